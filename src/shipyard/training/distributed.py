"""The one place that knows about devices and processes.

Single-process by default. When launched by ``torchrun`` (WORLD_SIZE > 1) it joins the process group (gloo on
CPU, NCCL on CUDA), gives each rank its slice of every batch order and wraps the model in DDP. The engine calls
only this module's methods, so it never branches on distributed-or-not.

Every rank reads and prepares the same data and trains on its shard of each global batch (``batch_size`` stays
the global batch, so a run on N processes follows the same path as one process). Every rank evaluates the whole
validation split, so early stopping decides alike everywhere. Rank 0 alone writes files.
After training the pipeline calls `close`: the group is left and rank 0 evaluates, packages and reports alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)
T = TypeVar("T")

# set by `DistContext.close`: training is over and rank 0 finishes the run alone, so contexts made afterwards
# (by evaluation or compression) must not try to join the group again
_GROUP_CLOSED = False


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ShipyardError("device cuda asked for, but no CUDA GPU is visible", where="training.device")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local)
    return torch.device("cpu")


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def create(cls, requested_device: str = "auto", *, new_job: bool = False) -> DistContext:
        """The context of this process; ``new_job`` marks the start of a training job (`run_job`)."""
        device = pick_device(requested_device)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and _GROUP_CLOSED:
            if new_job:
                raise ShipyardError(
                    "this torchrun launch has already trained a job, and its processes have left their group",
                    where="torchrun",
                    hint="train one job per torchrun launch",
                )
            return cls(device=device)
        if world > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            if device.type == "cuda":
                torch.cuda.set_device(device)
            log.info("joined process group: rank %d of %d (%s)", dist.get_rank(), world, backend)
            if dist.get_rank() != 0:  # one copy of the progress messages is enough
                logging.getLogger("shipyard").setLevel(logging.ERROR)
        rank = dist.get_rank() if dist.is_initialized() else 0
        return cls(rank=rank, world_size=world, device=device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch_indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of one global batch (every rank sees the same global order)."""
        if self.world_size == 1:
            return batch_indices
        return batch_indices[self.rank :: self.world_size]

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def accumulating(self, net: nn.Module, *, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Around a micro-batch's forward and backward: DDP exchanges gradients only on the group's last one."""
        if self.world_size == 1 or last or not hasattr(net, "no_sync"):
            return contextlib.nullcontext()
        return net.no_sync()

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        out: list[T] = [value] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        """Wait for every rank, then leave the process group; whatever follows runs in one process."""
        global _GROUP_CLOSED
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
            _GROUP_CLOSED = True
