"""Erasure requests, end to end: what ``shipyard data forget RUN --where ...`` calls.

:func:`forget_run` runs the row-level erasure (:func:`shipyard.data.forget.forget`: stored splits, category
vocabulary, model marks, run-store flag, audit log) and then regenerates everything in the run folder that was
computed from rows — ``data_summary.json``, ``metrics.json`` (validation / test metrics, residual summaries,
fairness), the metrics copied into ``model/shipyard.json``, ``report.html`` and ``model_card.md`` — from the
remaining rows and the (still flagged) model. A stale ``privacy_audit.json`` is removed. What is kept and why is
listed in docs/contracts.md, "What `shipyard data forget` guarantees".

Sits beside ``pipeline`` (both write the run's pages through evaluation's ``write_run_report``); only the CLI
calls it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.artifact import Artifact
from shipyard.artifact_recommend import is_recommender
from shipyard.config.loader import load_job
from shipyard.data.checks import summarize
from shipyard.data.forget import forget
from shipyard.data.prepare import PreparedData, SplitArrays
from shipyard.data.split_files import read_split, stored_splits
from shipyard.erasure_recommend import forget_recommendation
from shipyard.errors import ShipyardError
from shipyard.evaluation.fairness import fairness_metrics
from shipyard.evaluation.metrics import compute_metrics
from shipyard.evaluation.report import ReportSection
from shipyard.evaluation.run_report import write_run_report
from shipyard.io import atomic_write_json
from shipyard.store.runs import RunStore
from shipyard.training.engine import read_log

log = logging.getLogger(__name__)

__all__ = ["forget_run", "refresh_run_outputs"]

SPLITS = ("train", "validation", "test")
# summary entries recomputed here, or dropped because they were measured on rows that may include erased ones
_SUMMARY_KEEP = ("cleaning", "split", "pii")
ERASURE_NOTE = (
    "Rows were erased from this run's data after training (an erasure request). Data summary, metrics, report "
    "and this card were regenerated from the remaining rows; the model weights and the preprocessor's numeric "
    "statistics still derive from the erased rows until the model is retrained."
)


def forget_run(run_dir: str | Path, where: str, *, actor: str = "shipyard-cli") -> dict[str, Any]:
    """Erase the rows matching ``where`` and regenerate the run's row-derived outputs; returns counts only."""
    run_dir = Path(run_dir)
    if is_recommender(run_dir / "model"):  # events: splits, served histories, event log (erasure_recommend.py)
        return forget_recommendation(run_dir, where, actor=actor)
    result = forget(run_dir, where, actor=actor)
    if _task(run_dir) == "retrieval":  # its metrics come from ranking the passage index, not a preprocessor
        result["regenerated"] = []
        result["note"] = (
            "retrieval run: the rows were erased from splits/; metrics, report and model card were not "
            "regenerated (they may count erased queries): retrain the run (`shipyard retrain RUN`)"
        )
        return result
    erased = _erasure_info(run_dir)
    if result["rows_removed"] or erased:
        try:
            result["regenerated"] = refresh_run_outputs(run_dir)
        except ShipyardError as exc:
            raise ShipyardError(
                f"the rows were erased from the splits, but the summaries could not be regenerated: {exc.message}",
                where=str(run_dir),
                hint="fix the cause and run the same `shipyard data forget` again: it regenerates them",
            ) from None
    return result


def _task(run_dir: Path) -> str | None:
    meta = run_dir / "model" / "shipyard.json"
    return json.loads(meta.read_text(encoding="utf-8")).get("task") if meta.is_file() else None


def _erasure_info(run_dir: Path) -> dict[str, Any]:
    meta = run_dir / "model" / "shipyard.json"
    if not meta.is_file():
        return {}
    return dict(json.loads(meta.read_text(encoding="utf-8")).get("erasure") or {})


def refresh_run_outputs(run_dir: Path) -> list[str]:
    """Recompute summary, metrics, report and model card of a run from its stored splits."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "model").is_dir():
        log.warning("%s has no config.yaml or model/: only the splits were erased", run_dir)
        return []
    job = load_job(run_dir / "config.yaml")
    artifact = Artifact.load(run_dir / "model")
    pre = artifact.preprocessor
    old_summary = _read_json(run_dir / "data_summary.json")
    column_types = dict(old_summary.get("column_types") or {f["name"]: f["type"] for f in artifact.features})
    stored = stored_splits(run_dir)  # Parquet (tabular, text) or safetensors (images): data/split_files.py
    empty = pd.DataFrame(columns=[*pre.features, pre.target])
    frames = {name: read_split(stored[name]) if name in stored else empty for name in SPLITS}
    splits = {
        name: SplitArrays(inputs=pre.transform(frame), target=pre.encode_target(frame[pre.target]), frame=frame)
        for name, frame in frames.items()
    }
    erasure = _erasure_info(run_dir)
    extra: dict[str, Any] = {k: old_summary[k] for k in _SUMMARY_KEEP if k in old_summary}
    extra["erasure"] = {
        "rows_removed": erasure.get("rows_removed", 0),
        "requests": erasure.get("requests", 0),
        "note": "rows, missing values, balance, target statistics and leakage are recounted on the remaining "
        "rows; cleaning counts describe the source as loaded at training time",
    }
    summary = summarize(
        frames,
        target=pre.target,
        task=job.task,
        features=list(pre.features),
        column_types=column_types,
        cleaning=dict(old_summary.get("cleaning") or {}),
        extra=extra,
    )
    prepared = PreparedData(
        splits=splits,
        preprocessor=pre,
        summary=summary,
        input_spec=pre.input_spec(job.task),
        labels=pre.labels,
        column_types=column_types,
    )
    old_metrics = _read_json(run_dir / "metrics.json")
    metrics: dict[str, Any] = {k: v for k, v in old_metrics.items() if k not in ("validation", "test", "fairness")}
    predictions: dict[str, np.ndarray] = {}
    for name in ("validation", "test"):
        if len(splits[name]):
            predictions[name] = artifact.raw_outputs(splits[name].inputs)
            metrics[name] = compute_metrics(job.task, splits[name].target, predictions[name], pre.labels)
    if job.evaluation.sensitive_features:
        fairness = fairness_metrics(job, prepared, predictions)
        if fairness:
            metrics["fairness"] = fairness
    atomic_write_json(run_dir / "data_summary.json", summary)
    atomic_write_json(run_dir / "metrics.json", metrics)
    written = ["data_summary.json", "metrics.json"]
    for folder in sorted({run_dir / "model", *run_dir.glob("optimized/*")}):
        meta_path = folder / "shipyard.json"
        if meta_path.is_file():
            meta = _read_json(meta_path)
            # an optimised model's own metrics were measured on the old test rows: drop rather than keep them
            meta["metrics"] = {k: v for k, v in metrics.items() if k in ("validation", "test")}
            if folder.name != "model":
                meta["metrics"] = {}
            atomic_write_json(meta_path, meta)
            written.append(str(meta_path.relative_to(run_dir)))
    _replace_store_metrics(run_dir, metrics)
    audit = run_dir / "privacy_audit.json"
    if audit.is_file():  # measured on the old rows; `shipyard audit privacy` recomputes it
        audit.unlink()
        written.append("privacy_audit.json (removed)")
    _write_report_and_card(job, run_dir, metrics, prepared, predictions, splits["test"])
    written += ["report.html", "model_card.md"]
    log.info("regenerated %s after an erasure", ", ".join(written))
    return written


def _write_report_and_card(
    job: Any, run_dir: Path, metrics: dict[str, Any], prepared: Any, predictions: dict[str, Any], test: Any
) -> None:
    section = ReportSection("Erasure", f"<p>{ERASURE_NOTE}</p>")
    train_log = read_log(run_dir / "train_log.jsonl")
    write_run_report(
        job, run_dir, metrics, prepared, train_log, predictions, test, sections=[section], limitations=[ERASURE_NOTE]
    )


def _replace_store_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    try:
        RunStore.for_root(run_dir.resolve().parent).replace_metrics(run_dir.name, metrics)
    except ShipyardError as exc:  # a run folder copied away from its store
        log.warning("run %s is not in the run store (%s); its metrics there were not replaced", run_dir.name, exc)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))
