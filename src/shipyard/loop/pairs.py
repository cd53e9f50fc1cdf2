"""Query -> passage feedback for a `task: retrieval` run: what people confirmed (a helpful answer) or chose (an
agent's passage) becomes a training pair that `shipyard retrain <retrieval run>` learns from.

A pair is stored like every other correction in the loop store: the query as a logged input (redacted like the
prediction log, under the key ``query``: the column name the run's own ``splits/`` use, so one ``shipyard data
forget RUN --where "query == '...'"`` reaches both), with ``expires_at`` set by the sender's retention, and a
``loop_feedback`` row of kind ``passage`` whose ``label`` is the passage id in the run's index (the ids the
searcher answers with). ``correct`` is whether that passage is the one the model had answered with, when the
sender says which. Erasure (:func:`shipyard.loop.erasure.forget_predictions`) and retention
(:func:`shipyard.loop.predlog.purge_expired`) delete these rows with their feedback like any logged prediction.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from shipyard.errors import ShipyardError
from shipyard.loop.feedback import _SOURCE, APP_VERSION, FeedbackError, _app_store, model_meta
from shipyard.loop.predlog import new_prediction_id, redact_inputs
from shipyard.loop.store import LoopStore, feedback, predictions, under_folder

KIND = "passage"
QUERY = "query"  # the key of the stored input: the column name of the run's splits


def model_folder(path: Path) -> Path:
    return path / "model" if (path / "model" / "shipyard.json").is_file() else path


@lru_cache(maxsize=16)
def _passages(index_file: str, mtime_ns: int) -> dict[int, dict[str, Any]]:
    out = {}
    for line in Path(index_file).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[int(row["id"])] = {"text": row["text"], "group": row["group"]}
    return out


def passage_collection(model_path: str | Path) -> dict[int, dict[str, Any]]:
    """The passages a retrieval model's index holds now: id -> ``{"text", "group"}`` (added ones included)."""
    index_file = model_folder(Path(model_path)) / "index" / "passages.jsonl"
    try:
        return _passages(str(index_file), index_file.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError) as exc:
        raise ShipyardError(f"cannot read the retrieval model's passages ({exc})", where=str(index_file)) from None


def _passage_id(value: Any, passages: dict[int, Any], where: str) -> int:
    try:
        number = float(value)
        pid = int(number)
    except (TypeError, ValueError, OverflowError):
        raise FeedbackError(f"passage id must be a whole number, got {value!r}", status=422, where=where) from None
    if not math.isfinite(number) or pid != number:
        raise FeedbackError(f"passage id must be a whole number, got {value!r}", status=422, where=where)
    if pid not in passages:
        raise FeedbackError(
            f"passage {pid} is not in the retrieval model's collection ({len(passages)} passages)",
            status=422,
            where=where,
        )
    return pid


def submit_pair(  # long: one documented entry point; every argument is checked here, up front
    model: str,
    query: str,
    passage_id: int,
    *,
    source: str,
    model_path: str | Path,
    predicted: int | None = None,
    actor: str | None = None,
    store: LoopStore | None = None,
    retention_days: float = 30.0,
) -> dict[str, Any]:
    """Store one query -> passage pair for the retrieval run at ``model_path`` (served as ``model``).

    ``passage_id``: the passage people chose (an id of the run's index; checked). ``predicted``: the passage the
    model answered with, if known. Errors are :class:`FeedbackError` (422: an unknown passage, an empty query, a
    bad source); nothing is written then. Returns the stored feedback row plus ``prediction_id``.
    """
    if not isinstance(source, str) or not _SOURCE.fullmatch(source):
        raise FeedbackError(f"source must be a lower-case name of at most 16 characters, got {source!r}", status=422)
    if not isinstance(query, str) or not query.strip():
        raise FeedbackError("the query of a pair must be non-empty text", status=422, where="query")
    if not math.isfinite(retention_days) or retention_days <= 0:
        raise FeedbackError(f"retention_days must be positive, got {retention_days!r}", status=422)
    path = Path(model_path).expanduser().resolve()
    if model_meta(str(path))["task"] != "retrieval":
        raise FeedbackError("query -> passage pairs go to a retrieval run", status=422, where=str(path))
    pid = _passage_id(passage_id, passage_collection(path), f"pair from {source} for {model!r}")
    store = store or _app_store(path, None)
    stored, n_redacted = redact_inputs({QUERY: query})
    now, prediction = time.time(), new_prediction_id()
    row = {
        "prediction_id": prediction,
        "model": model,
        "kind": KIND,
        "label": str(pid),
        "correct": None if predicted is None else int(predicted) == pid,
        "source": source,
        "actor": actor or source,
        "at": now,
    }
    with store.begin() as conn:
        conn.execute(
            predictions.insert().values(
                id=prediction,
                model=model,
                version=APP_VERSION,
                model_path=str(path),
                at=now,
                expires_at=now + retention_days * 86400.0,
                inputs=json.dumps(stored),
                outputs=json.dumps({} if predicted is None else {"passage_id": int(predicted)}),
                label=None if predicted is None else str(int(predicted)),
                redactions=n_redacted,
            )
        )
        conn.execute(feedback.insert().values(**row))
    return row


def feedback_pairs(
    store: LoopStore,
    model: str | None = None,
    *,
    since: float | None = None,
    under: str | Path | None = None,
) -> pd.DataFrame:
    """Stored pairs (``model``: one served name; ``under``: sent for models inside this run folder; ``since``: by
    arrival): columns ``query``, ``passage_id``, ``prediction_id``, ``feedback_at``, oldest first."""
    query = (
        sa.select(predictions.c.id, predictions.c.inputs, feedback.c.label, feedback.c.at)
        .join(feedback, feedback.c.prediction_id == predictions.c.id)
        .where(feedback.c.kind == KIND)
        .order_by(feedback.c.at)
    )
    if model is not None:
        query = query.where(predictions.c.model == model)
    if under is not None:
        query = query.where(under_folder(under))
    if since is not None:
        query = query.where(feedback.c.at >= since)
    with store.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(
        {
            "query": [json.loads(r.inputs).get(QUERY) for r in rows],
            "passage_id": [r.label for r in rows],
            "prediction_id": [r.id for r in rows],
            "feedback_at": [float(r.at) for r in rows],
        }
    )
