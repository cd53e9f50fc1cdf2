"""The two-tower model's user tower as served: in torch, or the ONNX graph `shipyard optimize` exported.

A served two-tower recommender computes user vectors (an anonymous session, a user with new events) with its
user tower: ``(hist (N, history) item positions, -1 pads; uidx (N,) user rows, -1 anonymous) -> (N, dim)``.

- :class:`TorchUserTower`: the model's own ``_user`` with the catalogue's item vectors computed once (they are
  fixed while serving; ``TwoTower.user_vectors_from`` recomputes them, an MLP over every item, on each call);
- :class:`OnnxUserTower`: ``RUN/optimized/towers/user_tower[.int8].onnx`` through ONNX Runtime (one thread:
  serving batches are small, and the batcher runs one batch at a time);
- :func:`serving_user_tower`: which one a run serves. ``auto`` takes the file ``towers.json`` names in ``serve``
  (older exports without it: fp32), after a check on the run's own users that the file belongs to this model
  (fp32 within ``1e-4`` of torch; int8 a cosine of at least ``MIN_COSINE`` for every user); no file, no ONNX
  Runtime, or a failed check: torch, with a warning for the last two.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from shipyard.errors import ShipyardError
from shipyard.models.recommend.two_tower import PAD, TwoTower

log = logging.getLogger(__name__)
TOWERS_DIR = "optimized/towers"
TOWERS_META = "towers.json"
FILES = {"fp32": "user_tower.onnx", "int8": "user_tower.int8.onnx"}
FP32_TOLERANCE = 1e-4
MIN_COSINE = 0.95  # int8: a file from another model scores near 0
Choice = Literal["auto", "torch", "fp32", "int8"]


class TorchUserTower:
    kind = "torch"

    def __init__(self, model: TwoTower) -> None:
        self.model = model.eval()
        with torch.no_grad():
            self.items = model._item_all().detach().clone()

    def __call__(self, hist: np.ndarray, uidx: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.model._user(self.items, torch.as_tensor(hist, dtype=torch.long),
                                   torch.as_tensor(uidx, dtype=torch.long))  # fmt: skip
        return out.float().numpy()


class OnnxUserTower:
    def __init__(self, path: Path, kind: str, threads: int = 1) -> None:
        import onnxruntime as ort  # heavy: only when a run has exported towers

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]  # uidx is absent when the run has no user table
        self.path, self.kind = path, kind

    def __call__(self, hist: np.ndarray, uidx: np.ndarray) -> np.ndarray:
        feed = {"hist": np.asarray(hist, np.int64), "uidx": np.asarray(uidx, np.int64)}
        return np.asarray(self.session.run(None, {n: feed[n] for n in self.names})[0], dtype=np.float32)


def towers_dir(model_dir: Path) -> Path:
    """Where `shipyard optimize` puts a run's towers (``RUN/optimized/towers`` for ``RUN/model``)."""
    return (model_dir.parent if model_dir.name == "model" else model_dir) / TOWERS_DIR


def serving_user_tower(model: TwoTower, model_dir: Path, sample: np.ndarray, choice: Choice = "auto") -> Any:
    """The user tower to serve ``model`` with; ``sample`` (N, history) is some users' histories for the check."""
    torch_tower = TorchUserTower(model)
    folder = towers_dir(model_dir)
    if choice == "torch" or (choice == "auto" and not (folder / TOWERS_META).is_file()):
        return torch_tower
    try:
        record = json.loads((folder / TOWERS_META).read_text(encoding="utf-8"))
        kind = str(record.get("serve", "fp32")) if choice == "auto" else choice
        tower = OnnxUserTower(folder / FILES[kind], kind)
        uidx = np.full(len(sample), -1, dtype=np.int64)  # anonymous: the check needs no user rows
        ref, got = torch_tower(sample, uidx), tower(sample, uidx)
        if kind == "fp32" and float(np.abs(ref - got).max()) > FP32_TOLERANCE:
            raise ShipyardError(f"differs from torch by {float(np.abs(ref - got).max()):.2e}", where=str(tower.path))
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
        cos = float(((ref * got).sum(1) / np.maximum(norms, 1e-12)).min())
        if kind == "int8" and cos < MIN_COSINE:
            raise ShipyardError(f"smallest cosine with torch {cos:.3f} < {MIN_COSINE}", where=str(tower.path))
    except (ImportError, OSError, ValueError, KeyError, RuntimeError, ShipyardError) as exc:
        if choice != "auto":
            raise ShipyardError(f"cannot serve the {choice} user tower: {exc}", where=str(folder),
                                hint="run `shipyard optimize RUN --methods onnx,int8` again") from None  # fmt: skip
        log.warning("%s: the exported user tower is not used (%s); serving the torch tower", folder, exc)
        return torch_tower
    log.info("serving the %s ONNX user tower %s", kind, tower.path)
    return tower


def sample_histories(histories: list[list[int]], width: int, n: int = 32) -> np.ndarray:
    """(n, width) histories for the check: the first ``n`` non-empty ones, plus one empty (an all-pad row)."""
    rows = [h[-width:] for h in histories if h][:n]
    out = np.full((len(rows) + 1, width), PAD, dtype=np.int64)
    for r, h in enumerate(rows):
        out[r, -len(h) :] = h
    return out
