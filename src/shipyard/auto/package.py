"""The end of an ``auto`` run: choose the ensemble, write it as one artifact, score it, show the leaderboard."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.auto.candidates import copy_model
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json

LEADERBOARD_COLUMNS = [
    "candidate",
    "status",
    "validation",
    "oof",
    "test",
    "weight",
    "seconds",
    "size_bytes",
    "latency_ms_per_row",
    "reason",
]


def choose(
    scored: list[tuple[dict, list[Any], dict]], targets: dict[str, np.ndarray], task: str, rounds: int, prefer: str
) -> list[float]:
    """Each scored candidate's weight: greedy ensemble selection, or all on the best one. The selection reads the
    out-of-fold predictions on every pooled row when every candidate is bagged (many more rows than the
    validation split, so the weights overfit less), else the validation split's."""
    from shipyard.evaluation.ensemble import greedy_selection

    if not scored:
        raise ShipyardError(
            "no candidate finished within the time budget",
            where="model.time_budget",
            hint="raise model.time_budget, or name fewer or cheaper families (model.families)",
        )
    split = "pool" if all("pool" in preds for _, _, preds in scored) else "validation"
    if not all(split in preds for _, _, preds in scored):  # nothing to weigh them on: the cheapest family
        return [1.0] + [0.0] * (len(scored) - 1)
    selection = greedy_selection([p[split] for _, _, p in scored], targets[split], task, rounds=rounds)
    if prefer == "speed":
        return [1.0 if i == selection.best_single else 0.0 for i in range(len(scored))]
    return selection.weights


def combine_splits(scored: list[tuple[dict, list[Any], dict]], weights: list[float]) -> dict[str, np.ndarray]:
    from shipyard.evaluation.ensemble import combine

    out = {}
    for split in ("validation", "test"):
        if all(split in p for _, _, p in scored):
            out[split] = combine([p[split] for _, _, p in scored], weights)
    return out


def write_model(folder: Path, scored: list[tuple[dict, list[Any], dict]], weights: list[float], extra: dict) -> Path:
    """``folder`` becomes the run's model: the single chosen candidate's artifact as it is, or an ``ensemble``
    artifact holding the members (``members/<candidate>/``; a bagged candidate's fold models each as
    ``members/<candidate>-fold<i>/`` with its weight shared between them) and their weights."""
    members = []
    for (row, arts, _), w in zip(scored, weights, strict=True):
        if w > 0:
            for i, art in enumerate(arts):
                name = row["candidate"] if len(arts) == 1 else f"{row['candidate']}-fold{i}"
                members.append((row, name, art, w / len(arts)))
    if len(members) == 1:
        copy_model(members[0][2].path, folder)
        meta_path = folder / "shipyard.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        atomic_write_json(meta_path, {**meta, "auto": {"chosen": members[0][0]["candidate"], **extra}})
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for _, name, art, weight in members:
        copy_model(art.path, folder / "members" / name)
        entries.append({"name": name, "path": f"members/{name}", "weight": weight})
    first = members[0][2]
    first.preprocessor.save(folder)  # the features the ensemble takes (each member keeps its own preprocessing)
    meta = {
        **{k: v for k, v in first.meta.items() if k in ("format_version", "task", "features", "target", "labels")},
        "backend": "ensemble",
        "model": {"type": "auto", "params": extra.get("params", {})},
        "input": first.meta["input"],
        "target_scale": None,
        "members": entries,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "auto": extra,
    }
    atomic_write_json(folder / "shipyard.json", meta)
    return folder


def leaderboard_section(rows: list[dict[str, Any]], summary: dict[str, Any]) -> Any:
    from shipyard.evaluation.report import ReportSection, table_html

    table = [{k: r.get(k) for k in LEADERBOARD_COLUMNS} for r in rows]
    chosen = [f"{r['candidate']} ({r['weight']:.2f})" for r in rows if r.get("weight")]
    text = (
        f"<p>{len(rows)} candidates under a time budget of {summary['budget_s']:.0f}s (run: "
        f"{summary['seconds']:.0f}s). The model is "
        + ("an ensemble (greedy selection on validation, Caruana et al. 2004) of " if len(chosen) > 1 else "")
        + html.escape(", ".join(chosen))
        + ". Validation and test scores are accuracy (classification) or R² (regression); latency is "
        "milliseconds per row predicting the validation split from raw rows. A bagged candidate is k models, "
        "each trained on k-1 folds of the train and validation rows: its validation score is out-of-fold, "
        "<code>oof</code> is the same on every pooled row, and its test score averages the k models.</p>"
    )
    return ReportSection("Leaderboard (model: auto)", text + table_html(table))
