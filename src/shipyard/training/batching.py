"""Batch order and collation.

The order of examples in an epoch is a pure function of (seed, epoch), so a resumed run can rebuild it and skip
to where it stopped. With token lengths given, batches are length-bucketed: the shuffled order is cut into large
chunks, each chunk is sorted by length and cut into batches, and the batches are shuffled again, so each batch
is near-uniform in length (little padding) while the order of batches stays random.
"""

from __future__ import annotations

import math

import numpy as np
import torch

BUCKET_CHUNK_BATCHES = 50


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: np.ndarray | None = None, min_rows: int = 2
) -> list[torch.Tensor]:
    gen = _generator(seed, epoch)
    order = torch.randperm(n, generator=gen)
    if lengths is None:
        batches = list(order.split(batch_size))
    else:
        lens = torch.as_tensor(lengths)
        chunk = batch_size * BUCKET_CHUNK_BATCHES
        batches = []
        for part in order.split(chunk):
            part = part[torch.argsort(lens[part], stable=True)]
            batches.extend(part.split(batch_size))
        perm = torch.randperm(len(batches), generator=gen)
        batches = [batches[i] for i in perm]
    # a lone example in the last batch (under torchrun: in a rank's share of it) breaks batch norm and gives a
    # noisy step: fold a last batch below ``min_rows`` into its neighbour
    if len(batches) > 1 and len(batches[-1]) < min_rows:
        batches[-2] = torch.cat([batches[-2], batches[-1]])
        batches.pop()
    return batches


def eval_batches(n: int, batch_size: int, lengths: np.ndarray | None = None) -> list[torch.Tensor]:
    """Evaluation order: sorted by length when known (least padding); results are put back in row order."""
    idx = torch.arange(n) if lengths is None else torch.argsort(torch.as_tensor(lengths), stable=True)
    return list(idx.split(batch_size))


def to_tensors(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: _tensor(v) for k, v in inputs.items()}


def _tensor(array: np.ndarray) -> torch.Tensor:
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # torch wants writable memory; read-only arrays come from Parquet/Arrow
        array = array.copy()
    return torch.from_numpy(array)


def collate(tensors: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    """Gather one batch; token inputs are trimmed to the longest sequence in it (dynamic padding)."""
    batch = {k: v[idx] for k, v in tensors.items()}
    # several texts per row (a retrieval pair: `p_input_ids` / `p_attention_mask` beside the query's) each trim
    # to their own mask; the unprefixed mask trims every other 2-D input of its width, as before
    prefixes = [k[: -len("attention_mask")] for k in batch if k.endswith("attention_mask")]
    own = {k for k in batch for p in prefixes if p and k.startswith(p)}
    for prefix in prefixes:
        mask = batch[f"{prefix}attention_mask"]
        if mask.dim() != 2:
            continue
        width = max(1, int(mask.sum(dim=1).max()))
        batch = {
            k: (
                v[:, :width]
                if v.dim() == 2 and v.shape[1] == mask.shape[1] and (k.startswith(prefix) if prefix else k not in own)
                else v
            )
            for k, v in batch.items()
        }
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}


def token_lengths(inputs: dict[str, np.ndarray]) -> np.ndarray | None:
    mask = inputs.get("attention_mask")
    return None if mask is None else mask.sum(axis=1)


def steps_per_epoch(n: int, batch_size: int, accumulation: int) -> int:
    n_batches = max(1, math.ceil(n / batch_size))
    if n_batches > 1 and n % batch_size == 1:
        n_batches -= 1
    return math.ceil(n_batches / accumulation)
