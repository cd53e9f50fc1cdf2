"""`shipyard retrain RUN` for a recommender: a challenger trained on the parent's training events plus the events
its server recorded (``<run>/events.jsonl``: clicks and star ratings, e.g. from the shop front), as a new run
linked to its parent.

The parent's stored splits are the starting point: the challenger trains on ``splits/train.parquet`` plus the
served events and validates and tests on exactly the parent's validation and test events (``split.method:
given``), so the two are compared on the same fixed holdout. The job is the parent's ``config.yaml`` with only the
split (and the run name) changed; the item and user tables still come from the job's data source. Which served
events count follows the job:

- explicit (``model.type: mf``): only events that carried a rating (a click without one is not a rating and is
  left out, counted in ``skipped_unrated``);
- implicit (``data.implicit: true``): every event counts 1, except rated ones below ``data.min_rating`` (counted in
  ``skipped_below_min_rating``), as when the parent's events were read;
- otherwise (BPR / two-tower on rated data): every event.

A line of ``events.jsonl`` that cannot be read, or whose ids do not fit the parent's id type, is an error naming
its line (nothing is dropped silently). The staged files are owner-only and removed when the run ends; the new
run's own ``splits/train.parquet`` then holds the served events, where ``shipyard data forget`` reaches them.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_parquet
from shipyard.loop.lineage import link_retrain, run_id_of

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
EVENT_LOG = "events.jsonl"  # written by shipyard.serve.recommend (above this layer: the name is repeated)
COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def served_events(run_dir: Path, train: pd.DataFrame, job: Any) -> tuple[pd.DataFrame, dict[str, int]]:
    """The run's served events as interactions in the parent's column types, and what was left out and why."""
    path = run_dir / EVENT_LOG
    counts = {"events": 0, "skipped_unrated": 0, "skipped_below_min_rating": 0}
    if not path.is_file():
        return train.iloc[:0][COLUMNS].copy(), counts
    records, lines = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records.append([rec["user_id"], rec["item_id"], float(rec.get("rating", 1.0)), int(rec["timestamp"])])
        except (ValueError, KeyError, TypeError) as exc:
            raise ShipyardError(f"not an event record: {exc}", where=f"{path}, line {n}") from None
        lines.append((n, bool(rec.get("rated", True))))  # lines written before "rated" existed: ratings
    events = pd.DataFrame(records, columns=COLUMNS)
    for col in ("user_id", "item_id"):  # ids arrive as JSON strings or numbers: the parent's type decides
        if pd.api.types.is_integer_dtype(train[col].dtype):
            numbers = pd.to_numeric(events[col], errors="coerce")
            bad = np.flatnonzero(numbers.isna().to_numpy())
            if len(bad):
                raise ShipyardError(
                    f"{col} {events[col].iloc[bad[0]]!r} is not a number like the run's other ids",
                    where=f"{path}, line {lines[bad[0]][0]}",
                )
            events[col] = numbers.astype(train[col].dtype)
        else:
            events[col] = events[col].astype(str)
    rated = np.array([r for _, r in lines], bool)
    data, kind = job.recommend.data, job.recommend.model.type
    keep = np.ones(len(events), bool)
    if kind == "mf":
        keep &= rated
        counts["skipped_unrated"] = int((~rated).sum())
    elif data.implicit and data.min_rating is not None:
        low = rated & (events.rating.to_numpy() < data.min_rating)
        keep &= ~low
        counts["skipped_below_min_rating"] = int(low.sum())
    events = events.loc[keep].reset_index(drop=True)
    if data.implicit:
        events["rating"] = np.float32(1.0)
    counts["events"] = len(events)
    return events, counts


def retrain_recommendation(
    run_dir: Path, *, with_events: bool = True, since: float | None = None, show_progress: bool = False
) -> dict[str, Any]:
    """Train the challenger (``with_events=False``: on the parent's splits alone; ``since``: only events from this
    POSIX time); returns ``{"run_id", "run_dir", "parent", "feedback_rows", "events", "metrics"}``."""
    from shipyard.pipeline import load_run_job  # heavy (torch): only when a run is trained
    from shipyard.pipeline_recommend import run_recommendation_job

    job, base_dir = load_run_job(run_dir)
    parent_id = run_id_of(run_dir)
    missing = [s for s in SPLITS if not (run_dir / "splits" / f"{s}.parquet").is_file()]
    if missing:
        raise ShipyardError(f"the run keeps no {', '.join(missing)} split", where=str(run_dir / "splits"))
    splits = {s: pd.read_parquet(run_dir / "splits" / f"{s}.parquet") for s in SPLITS}
    events, counts = served_events(run_dir, splits["train"], job)
    if not with_events or since is not None:
        keep = np.full(len(events), with_events) & (events.timestamp.to_numpy() >= (since or 0))
        counts["left_out_by_options"] = int((~keep).sum())
        events = events.loc[keep].reset_index(drop=True)
        counts["events"] = len(events)
    logger.info("retrain %s: %d training events + %d served events (%s)", parent_id, len(splits["train"]),
                len(events), counts)  # fmt: skip
    staging = run_dir.parent / ".retrain" / f"{parent_id}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True, mode=0o700)
        files = {}
        for name in SPLITS:
            frame = pd.concat([splits[name], events], ignore_index=True) if name == "train" else splits[name]
            files[name] = str(atomic_write_parquet(staging / f"{name}.parquet", frame[COLUMNS], private=True))
        raw = job.model_dump()
        raw["recommend"]["split"] = {**raw["recommend"]["split"], "method": "given", "files": files}
        output = dict(raw.get("output") or {})
        parent_name = output.get("name") or job.name or parent_id
        output.update(runs_root=str(run_dir.parent), run_dir=None, name=f"{parent_name}-retrain")
        raw["output"] = output
        result = run_recommendation_job(type(job).model_validate(raw), base_dir=base_dir, show_progress=show_progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    until = float(events.timestamp.max()) if len(events) else None
    return link_retrain(result, parent_id, len(events), until) | {"events": counts}
