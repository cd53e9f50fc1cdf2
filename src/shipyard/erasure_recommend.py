"""Erasure for a recommendation run: ``shipyard data forget RUN --where "user_id == 42"``.

Removed: the matching events from the stored splits (`shipyard.data.forget`, which also marks the run in the run
store and writes the audit entry), from the model folder's ``interactions.parquet`` (the histories the server
loads: exclude-seen, fold-in, reasons) and from the served event log ``events.jsonl``. A server started after
this has neither the events nor a vector derived from them: a forgotten user is an unknown user (popularity
fallback) until they act again. A server already running keeps its memory until ``DELETE
/v1/models/{name}/users/{user_id}`` (admin) or a restart. Flagged: ``model/shipyard.json`` gets ``"erasure":
{"needs_retraining": true}`` (the weights, including the user's trained factors, were learnt from the events);
``metrics.json`` and the report are not regenerated (they say what the flagged model scored when trained).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.artifact_recommend import INTERACTIONS
from shipyard.data.where import parse_where
from shipyard.io import atomic_write_json, atomic_write_parquet, atomic_write_text

EVENT_LOG = "events.jsonl"  # the same file shipyard.serve.recommend appends to


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
    return {**result, "removed_elsewhere": erased}
