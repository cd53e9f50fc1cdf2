"""A preprocessor's files: ``preprocessor.json`` (structure) and ``preprocessor.safetensors`` (numbers), never
pickle, so an artifact loads without executing anything. Written atomically; read with every defect named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from shipyard.errors import ShipyardError
from shipyard.io import atomic_save_safetensors, atomic_write_json

__all__ = ["FORMAT_VERSION", "JSON_NAME", "TENSORS_NAME", "read_state", "write_state"]

FORMAT_VERSION = 1
JSON_NAME = "preprocessor.json"
TENSORS_NAME = "preprocessor.safetensors"


def write_state(folder: Path, state: dict[str, Any], stats: dict[str, np.ndarray]) -> None:
    """``stats`` as float64 tensors, then ``state`` as JSON (last: its presence says the folder is whole)."""
    import torch  # heavy: the data layer loads torch only when it saves (io's safetensors writer takes tensors)

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in stats.items()}
    atomic_save_safetensors(folder / TENSORS_NAME, tensors, metadata={"format_version": str(FORMAT_VERSION)})
    atomic_write_json(folder / JSON_NAME, state)


def read_state(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON state (of this format version) and the float64 statistics saved in ``folder``."""
    json_path, tensor_path = folder / JSON_NAME, folder / TENSORS_NAME
    for path in (json_path, tensor_path):
        if not path.is_file():
            raise ShipyardError("preprocessor file is missing", where=str(path))
    try:
        state = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShipyardError(f"preprocessor.json is not valid JSON: {exc}", where=str(json_path)) from None
    if state.get("format_version") != FORMAT_VERSION:
        raise ShipyardError(
            f"unsupported preprocessor format_version {state.get('format_version')!r}, expected {FORMAT_VERSION}",
            where=str(json_path),
        )
    try:
        stats = load_file(str(tensor_path))
    except (SafetensorError, OSError) as exc:
        raise ShipyardError(f"cannot read preprocessor tensors: {exc}", where=str(tensor_path)) from None
    return state, {k: np.asarray(v, dtype=np.float64) for k, v in stats.items()}
