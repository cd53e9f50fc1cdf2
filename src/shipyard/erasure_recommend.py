"""Erasure for a recommendation run: ``shipyard data forget RUN --where "user_id == 42"``.

Removed: the matching events from the stored splits (`shipyard.data.forget`, which also marks the run in the run
store and writes the audit entry), from the model folder's ``interactions.parquet`` (the histories the server
loads: exclude-seen, fold-in, reasons) and from the served event log ``events.jsonl``. A server started after
this has neither the events nor a vector derived from them: a forgotten user is an unknown user (popularity
fallback) until they act again. A server already running keeps its memory until ``DELETE
/v1/models/{name}/users/{user_id}`` (admin) or a restart. Flagged: ``model/shipyard.json`` gets ``"erasure":
{"needs_retraining": true}`` (the weights, including the user's trained factors, were learnt from the events).

Regenerated from the remaining events with the unchanged (flagged) model, as for tabular runs: ``metrics.json``
(validation / test ranking metrics, rating error, beyond-accuracy, the popularity baseline), the metrics in
``model/shipyard.json`` and in the run store, ``data_summary.json`` (split sizes, users and items recounted, plus
``"erasure"``), ``report.html`` and ``model_card.md`` (both say events were erased). ``train_log.jsonl`` and
``metrics.json``'s ``training`` entry are kept (they describe the training that happened).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.artifact_recommend import INTERACTIONS, load_recommender
from shipyard.config.loader import load_job
from shipyard.data.interactions import IdIndex
from shipyard.data.where import parse_where
from shipyard.errors import ShipyardError
from shipyard.evaluation.model_card import write_model_card
from shipyard.evaluation.ranking_report import ranking_sections
from shipyard.evaluation.recommend_eval import evaluate, popularity_metrics
from shipyard.evaluation.report import ReportSection, write_report
from shipyard.io import atomic_write_json, atomic_write_parquet, atomic_write_text
from shipyard.store.runs import RunStore
from shipyard.training.engine import read_log

log = logging.getLogger(__name__)

EVENT_LOG = "events.jsonl"  # the same file shipyard.serve.recommend appends to
SPLITS = ("train", "validation", "test")
ERASURE_NOTE = (
    "Events were erased from this run's data after training (an erasure request). Data summary, metrics, report "
    "and this card were regenerated from the remaining events; the model weights (including the erased users' "
    "factors) still derive from the erased events until the model is retrained."
)


def _erase_events(run_dir: Path, expression: Any) -> dict[str, int]:
    """Remove matching rows from the model's histories and the event log; all checked before any write."""
    hist_path = run_dir / "model" / INTERACTIONS
    hist = pd.read_parquet(hist_path)
    hist_mask = expression.mask(hist, where=str(hist_path))
    log_path = run_dir / EVENT_LOG
    lines = log_path.read_text(encoding="utf-8").splitlines() if log_path.is_file() else []
    records = [json.loads(ln) for ln in lines if ln.strip()]
    events = pd.DataFrame(records, columns=["user_id", "item_id", "rating", "timestamp"])
    if not events.empty:
        # ids arrive as strings or numbers over HTTP: compare like the stored events
        for col in ("user_id", "item_id"):
            numbers = pd.to_numeric(events[col], errors="coerce")
            if numbers.notna().all():
                events[col] = numbers.astype("int64")
    log_mask = expression.mask(events, where=str(log_path)) if not events.empty else pd.Series([], dtype=bool)
    if hist_mask.any():
        atomic_write_parquet(hist_path, hist.loc[~hist_mask.to_numpy()].reset_index(drop=True), private=True)
    if log_mask.any():
        kept = [json.dumps(r, sort_keys=True) + "\n" for r, drop in zip(records, log_mask, strict=True) if not drop]
        atomic_write_text(log_path, "".join(kept), private=True)
    return {"model_histories": int(hist_mask.sum()), "event_log": int(log_mask.sum())}


def forget_recommendation(run_dir: str | Path, where: str, *, actor: str = "shipyard-cli") -> dict[str, Any]:
    from shipyard.data.forget import forget

    run_dir = Path(run_dir)
    expression = parse_where(where)
    result = forget(run_dir, where, actor=actor)  # splits, run store flag, audit entry
    erased = _erase_events(run_dir, expression)
    total = result["rows_removed"] + sum(erased.values())
    if total:
        meta_path = run_dir / "model" / "shipyard.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        previous = meta.get("erasure") or {}
        meta["erasure"] = {
            "needs_retraining": True,
            "requests": int(previous.get("requests", 0)) + 1,
            "rows_removed": int(previous.get("rows_removed", 0)) + total,
            "note": "events were erased after training; the weights still carry what was learnt from them until "
            "the model is retrained",
        }
        atomic_write_json(meta_path, meta)
    out = {**result, "removed_elsewhere": erased}
    if total or meta_erasure(run_dir):  # a repeated request regenerates what an interrupted one left
        try:
            out["regenerated"] = refresh_recommendation_outputs(run_dir)
        except ShipyardError as exc:
            raise ShipyardError(
                f"the events were erased, but the metrics and report could not be regenerated: {exc.message}",
                where=str(run_dir),
                hint="fix the cause and run the same `shipyard data forget` again: it regenerates them",
            ) from None
    return out


def meta_erasure(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "model" / "shipyard.json"
    return dict(json.loads(path.read_text(encoding="utf-8")).get("erasure") or {}) if path.is_file() else {}


def refresh_recommendation_outputs(run_dir: str | Path) -> list[str]:
    """Recompute metrics, summary, report and model card of a recommendation run from its remaining events."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        log.warning("%s has no config.yaml: only the events were erased", run_dir)
        return []
    job = load_job(run_dir / "config.yaml")
    cfg = job.recommend
    live, meta = load_recommender(run_dir / "model")
    ids = json.loads((run_dir / "model" / "ids.json").read_text(encoding="utf-8"))
    ui, ii = IdIndex(ids["users"]), IdIndex(ids["items"])
    splits = {s: pd.read_parquet(run_dir / "splits" / f"{s}.parquet") for s in SPLITS}
    old = _read_json(run_dir / "metrics.json")
    metrics = {k: v for k, v in old.items() if k not in ("test", "validation", "baseline")}
    metrics["test"] = evaluate(cfg, live.model, splits, ui, ii, "test")
    metrics["validation"] = evaluate(cfg, live.model, splits, ui, ii, "validation")
    metrics["baseline"] = {"popularity": popularity_metrics(cfg, splits, ui, ii)}
    erasure = meta_erasure(run_dir)
    summary = _read_json(run_dir / "data_summary.json")
    every = pd.concat(splits.values())
    summary.update(
        splits={k: len(v) for k, v in splits.items()},
        users=int(every.user_id.nunique()),
        items=int(every.item_id.nunique()),
        events_in_splits=len(every),
        erasure={
            "rows_removed": erasure.get("rows_removed", 0),
            "requests": erasure.get("requests", 0),
            "note": "splits, users and items are recounted on the remaining events; events, duplicates and "
            "timestamps out of order describe the source as loaded at training time",
        },
    )
    atomic_write_json(run_dir / "data_summary.json", summary)
    atomic_write_json(run_dir / "metrics.json", metrics)
    meta["metrics"] = metrics["test"]
    atomic_write_json(run_dir / "model" / "shipyard.json", meta)
    try:
        RunStore.for_root(run_dir.resolve().parent).replace_metrics(run_dir.name, metrics)
    except ShipyardError as exc:  # a run folder copied away from its store
        log.warning("run %s is not in the run store (%s); its metrics there were not replaced", run_dir.name, exc)
    config = job.model_dump(mode="json")
    sections = [ReportSection("Erasure", f"<p>{ERASURE_NOTE}</p>"), *ranking_sections(metrics, cfg.evaluation.k)]
    write_report(
        run_dir, job_config=config, metrics=metrics, summary=summary, train_log=read_log(run_dir / "train_log.jsonl"),
        test_predictions=None, extra_sections=sections,
    )  # fmt: skip
    write_model_card(
        run_dir, job_config=config, metrics=metrics, summary=summary, extra={"limitations": [ERASURE_NOTE]}
    )
    written = ["data_summary.json", "metrics.json", "model/shipyard.json", "report.html", "model_card.md"]
    log.info("regenerated %s after an erasure", ", ".join(written))
    return written


def _read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}
