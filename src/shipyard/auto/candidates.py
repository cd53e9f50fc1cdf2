"""``model: {type: auto, time_budget: 10m}``: try the families that fit the data, then ensemble the best.

1. The data is prepared once (summary, splits) and its input kind picks the families (tabular: LightGBM, MLP,
   linear; text: the from-scratch text models; images: CNN, MLP), each with a small search (``SEARCH``), or the
   job's own ``families`` / ``candidates``.
2. Each candidate is a whole job (``shipyard train``) in its own process and its own run folder under
   ``candidates/``, with the time left as its limit: a candidate that hangs is killed at the limit and one that
   fails is recorded with its error; neither stops the search. Candidates run cheapest first, and none starts
   without ``MIN_CANDIDATE_S`` left.
3. The finished candidates predict the validation and test rows; greedy ensemble selection (Caruana et al.
   2004, ``evaluation/ensemble.py``) weighs them on validation. The ensemble (or, with ``prefer: speed`` or when
   one model wins every pick, the single best model) becomes the run's ``model/``: one artifact that predict,
   serve and evaluate take (backend ``ensemble``: ``members/<candidate>/`` and their weights).
4. The leaderboard (each candidate's validation and test score, time, size, latency, weight, status) goes into
   ``metrics.json`` (``auto``) and the report.

The budget covers the whole run: candidates stop at ``budget - reserve`` and the ensemble, report and model card
use the reserve, so the run ends within about 10 % of the budget.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

MIN_CANDIDATE_S = 20.0  # a candidate needs at least this much time left to start
_ES = {"metric": "loss", "patience": 3}
DEFAULT_FAMILIES = {
    "tabular": ["lightgbm", "linear", "mlp"],
    "text": ["text_linear", "text_bag", "text_cnn"],
    "image": ["cnn", "mlp"],
}
# per family, a small search: (model section, training settings); cheapest first
SEARCH: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {
    "lightgbm": [
        ({"type": "lightgbm"}, {}),
        (
            {
                "type": "lightgbm",
                "num_leaves": 63,
                "learning_rate": 0.03,
                "min_child_samples": 10,
                "feature_fraction": 0.8,
                "bagging_fraction": 0.8,
                "bagging_freq": 1,
            },
            {},
        ),
        # categories up to 64 levels split one-vs-rest, shallower trees: the most different setting that still
        # scored among the best on Adult (docs/benchmarks.md, #18), so the ensemble has something to mix
        (
            {
                "type": "lightgbm",
                "num_leaves": 15,
                "min_child_samples": 40,
                "lambda_l2": 1.0,
                "max_cat_to_onehot": 64,
            },
            {},
        ),
    ],
    "linear": [({"type": "linear"}, {"epochs": 20, "batch_size": 256, "learning_rate": 0.01, "early_stopping": _ES})],
    "mlp": [
        (
            {"type": "mlp", "hidden": [256, 128], "dropout": 0.2, "batch_norm": True},
            {"epochs": 30, "batch_size": 256, "learning_rate": 0.001, "weight_decay": 0.0001, "early_stopping": _ES},
        ),
    ],
    "text_linear": [
        (
            {"type": "text_linear"},
            {"epochs": 6, "batch_size": 64, "learning_rate": 0.01, "early_stopping": {"metric": "loss", "patience": 2}},
        )
    ],
    "text_bag": [
        (
            {"type": "text_bag", "weighting": "tfidf", "dim": 64},
            {
                "epochs": 5,
                "batch_size": 64,
                "learning_rate": 0.005,
                "early_stopping": {"metric": "loss", "patience": 2},
            },
        )
    ],
    "text_cnn": [
        (
            {"type": "text_cnn", "dim": 64, "filters": 64, "widths": [2, 3, 4]},
            {
                "epochs": 5,
                "batch_size": 64,
                "learning_rate": 0.002,
                "early_stopping": {"metric": "loss", "patience": 2},
            },
        )
    ],
    "cnn": [({"type": "cnn"}, {"epochs": 5, "learning_rate": 0.001, "early_stopping": _ES})],
    "transformer": [({"type": "transformer"}, {"epochs": 2, "learning_rate": 0.0001, "batch_size": 32})],
}


def reserve_seconds(budget: float) -> float:
    """Time kept back for the ensemble, report and model card."""
    return min(max(0.12 * budget, 15.0), 0.5 * budget)


def training_seconds(left: float) -> float:
    """A candidate's ``training.max_time`` when ``left`` seconds remain before it is killed: the rest is for its
    evaluation, report and model card, so a candidate stopped by the time limit still finishes with its best
    weights so far (killed, it would leave nothing)."""
    return round(max(left - min(max(0.15 * left, 20.0), 240.0), 0.5 * left), 1)


# ------------------------------------------------------------------------------------------------ candidates


def input_kind(job: Job, base_dir: Path) -> str:
    """tabular, text or image, from the declared features, the source format and the inferred column types."""
    specs = job.data.feature_specs() or []
    if any(s.type == "text" for s in specs):
        return "text"
    if job.data.source.format in ("idx", "images", "sklearn_digits") or any(s.type == "image" for s in specs):
        return "image"
    from shipyard.data.sources import load_source
    from shipyard.data.types import infer_column_types

    frame = load_source(job.data.source, base_dir=base_dir, field="data.source")
    skip = {job.data.target, job.data.id_column, *job.data.drop_columns}
    names = [s.name for s in specs] or [str(c) for c in frame.columns if c not in skip]
    types = infer_column_types(frame.head(5000), names, job.data.target, {s.name: s.type for s in specs})
    return "text" if "text" in types.values() else "tabular"


def candidate_plan(job: Job, kind: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, model section, training settings) per candidate, in the order they run."""
    params = job.model
    if params.candidates:
        # a candidate's own `training:` overrides the job's training settings for it alone
        sections = [
            ({k: v for k, v in c.items() if k != "training"}, dict(c.get("training") or {})) for c in params.candidates
        ]
    else:
        families = params.families or DEFAULT_FAMILIES[kind]
        sections = [entry for family in families for entry in SEARCH.get(family, [({"type": family}, {})])]
    return [(f"{i}-{model['type']}", model, training) for i, (model, training) in enumerate(sections)]


def _absolute_sources(raw: dict[str, Any], base_dir: Path) -> None:
    """Relative data paths made absolute, so a candidate's job file reads the same files from its own folder."""
    for key in ("source", "validation_source", "test_source"):
        src = raw["data"].get(key)
        if not src:
            continue
        for field in ("path", "images", "labels"):
            value = src.get(field)
            if value and not value.startswith("${") and not Path(value).is_absolute():
                src[field] = str((base_dir / value).resolve())


def candidate_job(job: Job, model: dict[str, Any], training: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    raw = job.model_dump(mode="json", exclude_unset=False)
    raw["model"] = model
    # the split is the job's whatever the candidate's own seed (which then changes only its initialisation and
    # batch order: two encoders from one recipe with two seeds are an ensemble's classic members)
    split = raw["data"]["split"]
    split["seed"] = split["seed"] if split["seed"] is not None else job.training.seed
    keep = {k: raw["training"][k] for k in ("num_threads", "device")}
    raw["training"] = {**raw["training"], **training, **keep}
    raw["name"] = f"{job.name or 'auto'}-{model['type']}"
    raw["output"] = {k: v for k, v in raw["output"].items() if k != "run_dir"}
    raw.pop("optimize", None)  # compression is for the final model, not for every candidate
    _absolute_sources(raw, base_dir)
    return Job.model_validate(raw).model_dump(mode="json")


def _own_limit(training: dict[str, Any], job: Job) -> float:
    """A ``max_time`` the candidate's or the job's training settings already set (seconds; inf: none)."""
    from shipyard.config.models import parse_duration

    own = training.get("max_time", job.training.max_time)
    return math.inf if own is None else parse_duration(own, "max_time")


def run_candidate(job_file: Path, run_dir: Path, limit_s: float, pool: Any = None) -> tuple[str, str | None, float]:
    """``shipyard train`` (or, with a ``pool``, the bag of fold models: ``shipyard.auto.bag``) in its own process
    group, killed at ``limit_s``: (status, reason, seconds)."""
    if pool is None:
        cmd = [sys.executable, "-m", "shipyard.cli", "train", str(job_file), "--run-dir", str(run_dir), "--quiet"]
    else:
        cmd = [sys.executable, "-m", "shipyard.auto.bag", str(job_file), str(pool.folder), str(run_dir)]
    started = time.monotonic()
    err_path = run_dir.parent / f"{run_dir.name}.stderr"
    with open(err_path, "wb") as err:
        # OpenMP threads that spin while they wait (LightGBM's default) crawl when the cores are shared: one
        # LightGBM fit on Adult took over 160 s with 2 spinning threads and 6.6 s with passive ones (load 30 on
        # 2 cores, docs/benchmarks.md #18); a user's own setting wins
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, env=env)
        try:
            code = proc.wait(timeout=max(limit_s, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the candidate's own process group (it may have workers)
            proc.wait()
            return "timeout", f"stopped at the time budget after {limit_s:.0f}s", time.monotonic() - started
    seconds = time.monotonic() - started
    if code != 0:
        tail = err_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return "failed", (" | ".join(tail) or f"exit code {code}")[:400], seconds
    return "finished", None, seconds


def run_candidates(
    job: Job, kind: str, base_dir: Path, folder: Path, deadline: float, pool: Any = None
) -> list[dict[str, Any]]:
    """Every candidate's leaderboard row (status, reason, time); finished ones have their run folder. With a
    ``pool`` (bagging), each candidate is k fold models (``<run_dir>/fold<i>/model``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, model, training in candidate_plan(job, kind):
        row: dict[str, Any] = {"candidate": name, "type": model["type"], "params": model, "training": training}
        rows.append(row)
        left = deadline - time.monotonic()
        if left < MIN_CANDIDATE_S:
            row.update(status="skipped", reason=f"{max(left, 0):.0f}s of the budget left")
            continue
        if pool is None and not training.get("soup") and not job.training.soup:
            training = {**training, "max_time": min(training_seconds(left), _own_limit(training, job))}
        try:
            raw = candidate_job(job, model, training, base_dir)
        except (ValueError, ShipyardError) as exc:
            row.update(status="failed", reason=str(exc)[:400], seconds=0.0)
            continue
        job_file = folder / f"{name}.yaml"
        job_file.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
        log.info("auto: candidate %s (%.0fs left)", name, left)
        status, reason, seconds = run_candidate(job_file, folder / name, left, pool)
        row.update(status=status, reason=reason, seconds=round(seconds, 1), run_dir=str(folder / name))
        if status == "finished" and pool is None:
            row["reason"] = _time_limit_reason(folder / name) or reason
        if pool is not None:  # a bag stopped at the budget keeps the fold models it finished
            from shipyard.auto.bag import folds_done

            row["folds"] = folds_done(folder / name, pool.k)
            if status == "timeout" and row["folds"]:
                row.update(
                    status="finished", reason=f"stopped at the time budget after {row['folds']} of {pool.k} folds"
                )
        log.info("auto: candidate %s %s in %.1fs%s", name, status, seconds, f": {reason}" if reason else "")
    return rows


def _time_limit_reason(run_dir: Path) -> str | None:
    """What the leaderboard says of a candidate that its ``training.max_time`` stopped (None: it was not)."""
    try:
        fit = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("training", {})
    except (OSError, ValueError):
        return None
    if not fit.get("stopped_at_time"):
        return None
    steps, best = fit.get("steps"), fit.get("best_epoch")
    return f"training stopped at the time budget after {steps} steps; best weights kept (epoch {best})"


# ------------------------------------------------------------------------------------------------ scoring


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def score_candidates(
    rows: list[dict[str, Any]], prepared: Any, task: str, pool: Any = None
) -> list[tuple[dict[str, Any], list[Any], dict]]:
    """(row, its artifacts, predictions per split) for each finished candidate; rows get scores, size, latency.
    A bagged candidate (``pool``) has k artifacts, out-of-fold predictions on the pool (``pool``, and the
    validation rows' share) and the fold models' average on test; its ``oof`` score is on every pooled row."""
    from shipyard.artifact import Artifact
    from shipyard.auto.bag import bag_predictions

    def align(out: dict[str, Any], art: Any) -> np.ndarray:
        return _aligned(out, art, prepared.labels, task)

    scored = []
    for row in rows:
        if row.get("status") != "finished":
            continue
        try:
            folder = Path(row["run_dir"])
            if pool is None:
                arts = [Artifact.load(folder / "model")]
                preds, seconds = _single_predictions(arts[0], prepared, align)
                ms = 1000 * seconds / max(len(prepared.splits["validation"].target), 1)
            else:
                arts = [Artifact.load(folder / f"fold{i}" / "model") for i in range(row["folds"])]
                preds = bag_predictions(arts, pool, prepared.splits["test"].frame, align)
                targets = pool.targets(len(arts))
                row["oof"] = _score(task, targets["pool"], preds["pool"], prepared.labels)
                sample = prepared.splits["validation"].frame.head(1000)  # a row goes through every fold model
                started = time.perf_counter()
                for art in arts:
                    art.predict_frame(sample)
                ms = 1000 * (time.perf_counter() - started) / max(len(sample), 1)
            row["latency_ms_per_row"] = round(ms, 4)
            for split in ("validation", "test"):
                if split in preds:
                    target = targets[split] if pool is not None and split == "validation" else None
                    target = prepared.splits[split].target if target is None else target
                    row[split] = _score(task, target, preds[split], prepared.labels)
            row["size_bytes"] = sum(_folder_bytes(a.path) for a in arts)
        except Exception as exc:  # a candidate that cannot predict is out of the ensemble, with its reason
            row.update(status="failed", reason=f"could not predict: {type(exc).__name__}: {exc}"[:400])
            continue
        scored.append((row, arts, preds))
    return scored


def _single_predictions(art: Any, prepared: Any, align: Any) -> tuple[dict[str, np.ndarray], float]:
    """One model's predictions on the validation and test rows, and the seconds the validation rows took."""
    preds: dict[str, np.ndarray] = {}
    seconds = 0.0
    for split in ("validation", "test"):
        data = prepared.splits[split]
        if len(data.target) == 0:
            continue
        started = time.perf_counter()
        preds[split] = align(art.predict_frame(data.frame), art)
        if split == "validation":
            seconds = time.perf_counter() - started
    return preds, seconds


def _score(task: str, target: np.ndarray, pred: np.ndarray, labels: list[str] | None) -> float:
    from shipyard.evaluation.metrics import compute_metrics

    outputs = np.log(np.clip(pred, 1e-30, None)) if task == "classification" else pred
    return compute_metrics(task, target, outputs, labels)["accuracy" if task == "classification" else "r2"]


def _aligned(out: dict[str, Any], art: Any, labels: list[str] | None, task: str) -> np.ndarray:
    """Probabilities in the run's label order (or values)."""
    if task != "classification":
        return np.asarray(out["value"], dtype=np.float64)
    proba = np.asarray(out["probabilities"], dtype=np.float64)
    own = [str(x) for x in (art.labels or [])]
    if labels is None or own == list(labels):
        return proba
    index = {label: i for i, label in enumerate(own)}
    return np.column_stack([proba[:, index[label]] if label in index else np.zeros(len(proba)) for label in labels])


def drop_row_copies(rows: list[dict[str, Any]], pool: Any = None) -> None:
    """Each candidate stored the same rows as the auto run (``splits/``), and bagging pooled them: removed once
    scored, so personal data lives in one place, which `shipyard data forget` on the auto run reaches."""
    for row in rows:
        if row.get("run_dir"):
            shutil.rmtree(Path(row["run_dir"]) / "splits", ignore_errors=True)
    if pool is not None:
        shutil.rmtree(pool.folder, ignore_errors=True)


def budget_status(started: float, budget: float) -> dict[str, float]:
    return {"budget_s": round(budget, 1), "seconds": round(time.monotonic() - started, 1)}


def copy_model(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
