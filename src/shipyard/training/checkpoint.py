"""Checkpoints: everything needed to continue a run bit-for-bit.

A checkpoint holds the model, optimiser, scheduler and gradient-scaler states, every random-number state
(Python, NumPy, torch CPU/CUDA and the augmentation generator) and the position in the epoch's data order. It is
written atomically and read back with ``torch.load(weights_only=True)``, which unpickles nothing but tensors and
plain containers.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipyard.errors import ShipyardError
from shipyard.io import atomic_torch_save, atomic_write_text

log = logging.getLogger(__name__)
LATEST = "latest.json"


def capture_rng(aug_generator: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "augment": aug_generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], aug_generator: torch.Generator) -> None:
    random.setstate(_as_tuple(state["python"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    aug_generator.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


def save_checkpoint(folder: Path, payload: dict[str, Any], keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{payload['state']['global_step']:08d}-e{payload['state']['epoch']:03d}.pt"
    path = atomic_torch_save(folder / name, payload)
    atomic_write_text(folder / LATEST, json.dumps({"file": name, "state": payload["state"]}) + "\n")
    for old in sorted(folder.glob("ckpt-*.pt"))[:-keep]:
        if old.name != name:
            old.unlink(missing_ok=True)
    return path


def load_latest(folder: Path) -> dict[str, Any]:
    pointer = folder / LATEST
    if not pointer.is_file():
        raise ShipyardError("no checkpoint to resume from", where=str(folder), hint="was the run started?")
    name = json.loads(pointer.read_text())["file"]
    path = folder / name
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file
        raise ShipyardError(f"checkpoint cannot be read: {exc}", where=str(path)) from None


def rank_rng(payload: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """This rank's saved random streams; rank 0's (with a warning) when the world size changed since."""
    saved = payload.get("rng_by_rank") or [payload["rng"]]
    if len(saved) != world_size:
        log.warning(
            "the checkpoint was written by %d process(es) and is resumed by %d: every rank restarts from rank "
            "0's random state, so the run goes on but will not match an uninterrupted one bit for bit",
            len(saved),
            world_size,
        )
        return saved[0]
    return saved[rank]
