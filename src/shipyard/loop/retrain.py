"""Retrain: a challenger from a run's own job plus the feedback its users gave, as a new run linked to its parent.

The parent's stored splits are the starting point (``splits/*.parquet``): the new run trains on the parent's
training rows plus the accepted feedback rows (logged inputs with the label or value people gave), and validates
and tests on exactly the parent's validation and test rows, so the two models are compared on the same fixed
holdout. The job is the parent's ``config.yaml`` with only the data sources (and the run name) changed. The
staged sources are written owner-only and removed when the run ends; the new run's own ``splits/`` then hold the
feedback rows, where ``shipyard data forget`` reaches them like any other row.

The run store links the two: the new run is flagged ``parent = <parent run id>``, ``feedback_rows = N`` and
``feedback_until = <time>`` (the newest feedback it learnt from: comparisons score it only on later feedback).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.artifact_recommend import is_recommender
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_parquet
from shipyard.loop.feedback import labelled_rows
from shipyard.loop.lineage import link_retrain, run_id_of
from shipyard.loop.predlog import input_columns
from shipyard.loop.retrain_recommend import retrain_recommendation
from shipyard.loop.retrain_retrieval import retrain_retrieval
from shipyard.loop.store import LoopStore

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def parse_since(text: str | None) -> float | None:
    """``--since`` as an ISO date or date-time (UTC when no zone is given) -> POSIX seconds."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ShipyardError(
            f"not a date: {text!r}", where="--since", hint="e.g. 2026-11-30 or 2026-11-30T12:00"
        ) from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def feedback_frame(rows: pd.DataFrame, train: pd.DataFrame, target: str, id_column: str | None) -> pd.DataFrame:
    """Feedback rows in the shape of the parent's training split (same columns, same dtypes where they fit)."""
    if rows.empty:
        return train.iloc[:0].copy()
    frame = rows[input_columns(rows)].copy()
    frame[target] = rows["_target"].to_numpy()
    if id_column is not None:
        frame[id_column] = ["feedback-" + str(pid) for pid in rows["_id"]]
    missing = [c for c in train.columns if c not in frame.columns]
    for column in missing:  # e.g. a sensitive column kept for fairness reports, never logged: unknown here
        frame[column] = pd.NA
    frame = frame[list(train.columns)]
    for column in train.columns:
        with contextlib.suppress(TypeError, ValueError):  # left as logged; the data layer's type checks decide
            frame[column] = frame[column].astype(train[column].dtype)
    return frame


def retrain(
    run_dir: str | Path,
    *,
    store: LoopStore | None,
    with_feedback: bool = True,
    since: float | None = None,
    model: str | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train the challenger; returns ``{"run_id", "run_dir", "parent", "feedback_rows", "metrics"}``."""
    from shipyard.pipeline import load_run_job, run_job  # heavy (torch): only when a run is trained

    run_dir = Path(run_dir).resolve()
    if is_recommender(run_dir / "model"):  # its feedback is the served events (events.jsonl), not prediction logs
        return retrain_recommendation(run_dir, with_events=with_feedback, since=since, show_progress=show_progress)
    if _task(run_dir) == "retrieval":  # its feedback is query -> passage pairs (loop/pairs.py), not labelled rows
        return retrain_retrieval(
            run_dir, store=store, with_feedback=with_feedback, since=since, model=model, show_progress=show_progress
        )
    job, base_dir = load_run_job(run_dir)
    parent_id = run_id_of(run_dir)
    missing = [s for s in SPLITS if not (run_dir / "splits" / f"{s}.parquet").is_file()]
    if missing:
        raise ShipyardError(
            f"the run keeps no {', '.join(missing)} split, so it cannot be retrained with feedback",
            where=str(run_dir / "splits"),
            hint="image runs keep no splits; retrain those from their job file",
        )
    splits = {s: pd.read_parquet(run_dir / "splits" / f"{s}.parquet") for s in SPLITS}
    rows = pd.DataFrame()
    if with_feedback:
        if store is None:
            raise ShipyardError("--with-feedback needs the loop store", where="retrain")
        rows = labelled_rows(store, model, since=since, under=None if model else run_dir)
    extra = feedback_frame(rows, splits["train"], job.data.target, job.data.id_column)
    logger.info("retrain %s: %d training rows + %d feedback rows", parent_id, len(splits["train"]), len(extra))
    staging = run_dir.parent / ".retrain" / f"{parent_id}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True, mode=0o700)
        paths = {}
        for name, frame in (
            ("train", pd.concat([splits["train"], extra], ignore_index=True)),
            ("validation", splits["validation"]),
            ("test", splits["test"]),
        ):
            paths[name] = atomic_write_parquet(staging / f"{name}.parquet", frame, private=True)
        new_job = _challenger_job(job, paths, run_dir)
        result = run_job(new_job, base_dir=base_dir, show_progress=show_progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    until = float(rows["_feedback_at"].max()) if len(rows) else None
    return link_retrain(result, parent_id, len(extra), until)


def _task(run_dir: Path) -> str | None:
    meta = run_dir / "model" / "shipyard.json"
    if not meta.is_file():
        return None
    return json.loads(meta.read_text(encoding="utf-8")).get("task")


def _challenger_job(job: Any, paths: dict[str, Path], run_dir: Path) -> Any:
    """The parent's job reading the staged splits: the whole staged train file trains, nothing is re-split."""
    data = job.data.model_dump()

    def source(path: Path) -> dict[str, Any]:
        return {"path": str(path), "format": "parquet"}

    data.update(source=source(paths["train"]), validation_source=source(paths["validation"]))
    data.update(test_source=source(paths["test"]))
    split = dict(data.get("split") or {})
    if split.get("method") == "kfold":
        split["method"] = "stratified"
    data["split"] = split
    # the stored splits hold the kept columns only: a column the parent dropped is not there to drop again
    columns = set(pd.read_parquet(paths["train"]).columns)
    data["drop_columns"] = [c for c in data.get("drop_columns") or [] if c in columns]
    raw = job.model_dump()
    raw["data"] = data
    output = dict(raw.get("output") or {})
    parent_name = output.get("name") or job.name or run_dir.name
    output.update(runs_root=str(run_dir.parent), run_dir=None, name=f"{parent_name}-retrain")
    raw["output"] = output
    return type(job).model_validate(raw)
