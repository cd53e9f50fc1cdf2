"""ONNX export of a two-tower recommender's towers, checked against torch (and an int8 variant, measured).

``shipyard optimize RUN --methods onnx[,int8]`` on a two-tower run writes ``RUN/optimized/towers/``:

- ``item_tower.onnx``: ``item_x`` (N, F) item feature rows and ``item`` (N,) item positions -> (N, dim) unit
  item vectors (the MLP over the metadata plus the learnt id embedding of items seen in training; a cold item
  has none, so a new item's vector needs only its feature row);
- ``user_tower.onnx``: ``hist`` (N, history) recent item positions (-1 pads, most recent last) and ``uidx`` (N,)
  user positions (-1: anonymous) -> (N, dim) unit user vectors; the catalogue's item vectors and the users'
  feature rows are constants of the graph;
- ``*.int8.onnx`` (``int8``): dynamic int8 quantisation of the same graphs (weights per channel);
- ``towers.json``: ``serve`` (the user tower serving uses: fp32 or int8); for each file, the largest absolute
  difference from torch over every item / every user with a history, and the top-k agreement of the
  recommendations built from its vectors (the overlap of each user's top-k list, seen items excluded, with
  torch's), plus the file sizes.

A file whose fp32 vectors differ from torch's by more than ``TOLERANCE`` is refused (removed, an error); an int8
file is kept with its measured agreement, and ``int8_agreement_ok`` says whether it met ``INT8_MIN_AGREEMENT``.
``serve`` names the user tower serving runs (`shipyard.models.recommend.towers`): int8 only when it met the
agreement and its user tower was measured here at least 10 % faster than fp32 at serving's batch sizes (1 and 64;
``user_tower_ms``), else fp32. bench/recommend_onnx.py measures all of it against torch. MF and BPR have no
towers to run (their vectors are lookup tables, already in the FAISS index): refused with that reason.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from shipyard.artifact_recommend import INTERACTIONS, load_recommender
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json
from shipyard.models.recommend.two_tower import TwoTower, last_histories
from shipyard.optimize.measure import max_abs_diff, ort_session
from shipyard.optimize.quantize import quantize_dynamic_int8

log = logging.getLogger(__name__)
TOLERANCE = 1e-4  # unit vectors: fp32 graph against torch
INT8_MIN_AGREEMENT = 0.9  # top-k overlap below this and int8 does not pay, whatever its speed or size
OPSET = 17
INT8_MIN_SPEEDUP = 0.9  # int8 is served only if its user tower takes at most 90 % of fp32's time at every batch
SERVING_BATCHES = (1, 64)
TIMING_CALLS = 200


class ItemTower(nn.Module):
    def __init__(self, model: TwoTower) -> None:
        super().__init__()
        self.mlp, self.ids = model.item_mlp, model.item_id
        self.register_buffer("known", model.known.to(torch.float32).unsqueeze(-1))

    def forward(self, item_x: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(item_x) + self.ids(item) * self.known[item], dim=-1)


class UserTower(nn.Module):
    """The user tower of `TwoTower._user` with the catalogue's item vectors fixed (the graph's constants)."""

    def __init__(self, model: TwoTower) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            self.register_buffer("items", model._item_all().detach().clone())

    def forward(self, hist: torch.Tensor, uidx: torch.Tensor) -> torch.Tensor:
        return self.model._user(self.items, hist, uidx)


def _export(module: nn.Module, sample: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    axes = {n: {0: "batch"} for n in [*names, "vectors"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module.eval(), sample, str(path), input_names=names, output_names=["vectors"], opset_version=OPSET,
            dynamic_axes=axes, do_constant_folding=True, dynamo=False,
        )  # fmt: skip


def _top_k_overlap(
    users: np.ndarray, items: np.ndarray, ref_u: np.ndarray, ref_i: np.ndarray, seen: Any, k: int
) -> float:
    def lists(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        scores = u @ i.T
        scores[seen] = -np.inf
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    a, b = lists(users, items), lists(ref_u, ref_i)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)])) if len(a) else 1.0


def _run(path: Path, inputs: dict[str, np.ndarray], threads: int) -> np.ndarray:
    session = ort_session(path, threads)
    # an input the graph never reads (uidx when there is no users table) is dropped by the exporter
    return np.asarray(session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})[0])


def _user_tower_ms(variants: dict[str, Any], inputs: dict[str, np.ndarray], threads: int) -> dict[str, Any]:
    """Median ms of one user-tower call per variant at serving's batch sizes (1: a session or a fold-in; 64: a
    full micro-batch), the variants interleaved so that load from other processes falls on both alike."""
    sessions = {v: ort_session(paths["user_tower"], threads) for v, paths in variants.items()}
    out: dict[str, Any] = {}
    for batch in SERVING_BATCHES:
        feed = {name: x[:batch] for name, x in inputs.items()}
        times: dict[str, list[float]] = {v: [] for v in sessions}
        for _ in range(TIMING_CALLS):
            for v, session in sessions.items():
                names = [i.name for i in session.get_inputs()]
                t = time.perf_counter()
                session.run(None, {n: feed[n] for n in names})
                times[v].append((time.perf_counter() - t) * 1000)
        out[f"batch {batch}"] = {v: float(np.median(t)) for v, t in times.items()}
    return out


def export_towers(run: str | Path, *, int8: bool = False, threads: int = 1, k: int = 10) -> dict[str, Any]:
    """Write the towers of a two-tower run (or model folder) and return what ``towers.json`` records."""
    run = Path(run)
    model_dir = run / "model" if (run / "model").is_dir() else run
    live, meta = load_recommender(model_dir, towers="torch")  # the reference is torch, whatever was exported
    if meta["model"]["type"] != "two_tower":
        raise ShipyardError(
            f"a {meta['model']['type']} model has no towers to export: its user and item vectors are lookup "
            "tables, already in the FAISS index",
            where=str(model_dir),
            hint="ONNX export applies to model.type: two_tower",
        )
    model: TwoTower = live.model.eval()
    out_dir = (model_dir.parent if model_dir.name == "model" else model_dir) / "optimized" / "towers"
    out_dir.mkdir(parents=True, exist_ok=True)
    n_items = model.n_items
    item_inputs = {"item_x": model.item_x.numpy(), "item": np.arange(n_items, dtype=np.int64)}
    events = pd.read_parquet(model_dir / INTERACTIONS)
    ids = json.loads((model_dir / "ids.json").read_text(encoding="utf-8"))
    pos_u = {v: i for i, v in enumerate(ids["users"])}
    pos_i = {v: i for i, v in enumerate(ids["items"])}
    events = events[events.user_id.isin(pos_u) & events.item_id.isin(pos_i)]
    u = events.user_id.map(pos_u).to_numpy(np.int64)
    i = events.item_id.map(pos_i).to_numpy(np.int64)
    hist = last_histories(u, i, events.timestamp.to_numpy(), len(ids["users"]), model.history)
    users = np.flatnonzero((hist >= 0).any(axis=1))
    user_inputs = {"hist": hist[users], "uidx": users.astype(np.int64)}
    seen = np.zeros((len(users), n_items), bool)
    row = {int(x): r for r, x in enumerate(users)}
    keep = np.isin(u, users)
    seen[[row[int(x)] for x in u[keep]], i[keep]] = True
    with torch.no_grad():
        ref_items = ItemTower(model)(*(torch.as_tensor(v) for v in item_inputs.values())).numpy()
        ref_users = UserTower(model)(*(torch.as_tensor(v) for v in user_inputs.values())).numpy()
    files = {"item_tower": out_dir / "item_tower.onnx", "user_tower": out_dir / "user_tower.onnx"}
    _export(ItemTower(model), tuple(torch.as_tensor(v[:4]) for v in item_inputs.values()), list(item_inputs),
            files["item_tower"])  # fmt: skip
    _export(UserTower(model), tuple(torch.as_tensor(v[:4]) for v in user_inputs.values()), list(user_inputs),
            files["user_tower"])  # fmt: skip
    report: dict[str, Any] = {"k": k, "users": len(users), "items": n_items, "tolerance": TOLERANCE, "files": {}}
    variants = {"fp32": files}
    if int8:
        variants["int8"] = {}
        with tempfile.TemporaryDirectory() as work:
            for name, path in files.items():
                q = out_dir / f"{name}.int8.onnx"
                quantize_dynamic_int8(path, q, Path(work))
                variants["int8"][name] = q
    for variant, paths in variants.items():
        vi, vu = _run(paths["item_tower"], item_inputs, threads), _run(paths["user_tower"], user_inputs, threads)
        entry = {
            "item_max_abs_diff": max_abs_diff(ref_items, vi),
            "user_max_abs_diff": max_abs_diff(ref_users, vu),
            f"top{k}_agreement": _top_k_overlap(vu, vi, ref_users, ref_items, seen, k),
            "bytes": {name: p.stat().st_size for name, p in paths.items()},
        }
        report["files"][variant] = entry
        worst = max(entry["item_max_abs_diff"], entry["user_max_abs_diff"])
        if variant == "fp32" and worst > TOLERANCE:
            for p in paths.values():
                p.unlink(missing_ok=True)
            raise ShipyardError(f"the ONNX towers differ from torch by {worst:.2e} (> {TOLERANCE})", where=str(out_dir))
    report["serve"] = "fp32"
    if int8:
        report["int8_agreement_ok"] = report["files"]["int8"][f"top{k}_agreement"] >= INT8_MIN_AGREEMENT
        report["user_tower_ms"] = _user_tower_ms(variants, user_inputs, threads)
        faster = all(t["int8"] <= INT8_MIN_SPEEDUP * t["fp32"] for t in report["user_tower_ms"].values())
        report["serve"] = "int8" if report["int8_agreement_ok"] and faster else "fp32"
    atomic_write_json(out_dir / "towers.json", report)
    log.info("exported the towers to %s: %s", out_dir, report["files"])
    return report
