"""Erasure requests against the prediction log: the loop's part of ``shipyard data forget``.

``shipyard data forget RUN --where EXPR`` (the CLI's forget command) calls the run-folder erasure
(:func:`shipyard.erasure.forget_run`, pipeline level) and then :func:`forget_predictions` here with
``under=RUN``: the logged inputs of every model served from that run folder are matched with the same ``--where``
language (:mod:`shipyard.data.where`, plus the column ``prediction_id``), and the matching predictions are deleted
with their feedback and queue entries, in one transaction, under SQLite's ``secure_delete``. Rows past their
retention are purged first. The audit log gets one ``loop.forget`` entry with counts and column names only.

Logged inputs are what the server received after redaction, so a request can match only on what was logged (a
feature value, or the prediction id): a record id that is not a model input is never logged, and so is never
there to erase.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shipyard.data.where import parse_where
from shipyard.errors import ShipyardError
from shipyard.loop.predlog import purge_expired, rows_to_frame
from shipyard.loop.store import LoopStore, feedback, predictions, queue, under_folder

logger = logging.getLogger(__name__)

CHUNK = 5000


def _matching_ids(store: LoopStore, expression: Any, query: Any) -> tuple[list[str], int, set[str]]:
    """Ids whose logged inputs match, rows scanned, and the models whose inputs lack a column of the expression."""
    ids: list[str] = []
    scanned = 0
    lacking: set[str] = set()
    offset = 0
    while True:
        with store.connect() as conn:
            rows = conn.execute(query.order_by(predictions.c.id).limit(CHUNK).offset(offset)).mappings().all()
        if not rows:
            break
        offset += len(rows)
        frame = rows_to_frame(rows)
        frame["prediction_id"] = frame["_id"]
        scanned += len(frame)
        for model, part in frame.groupby(frame["_model_path"].astype(str)):
            present = part.dropna(axis=1, how="all")
            if any(c not in present.columns for c in expression.columns):
                lacking.add(str(model))
                continue
            mask = expression.mask(present, where="the prediction log")
            ids.extend(present.loc[mask, "_id"].tolist())
    return ids, scanned, lacking


def forget_predictions(
    store: LoopStore,
    where: str,
    *,
    under: str | Path | None = None,
    model: str | None = None,
    actor: str = "shipyard-cli",
    audit: Any = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Delete logged predictions matching ``where`` (of models under ``under`` / named ``model``); counts only.

    ``strict``: an expression on columns no logged input has is an error (else a note in the result: the run-folder
    erasure that runs first may match on a record id the log never holds)."""
    expression = parse_where(where)
    purge_expired(store)
    query = sa.select(predictions)
    if under is not None:
        query = query.where(under_folder(under))
    if model is not None:
        query = query.where(predictions.c.model == model)
    ids, scanned, lacking = _matching_ids(store, expression, query)
    no_columns = bool(scanned and not ids and lacking and _all_lacking(store, query, lacking))
    if no_columns and strict:
        raise ShipyardError(
            f"no logged input has the column(s) {', '.join(expression.columns)}",
            where="--where (prediction log)",
            hint="the prediction log holds each model's inputs and `prediction_id`; match on those",
        )
    removed = {"predictions": 0, "feedback": 0, "queue": 0}
    with store.begin() as conn:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            removed["feedback"] += conn.execute(feedback.delete().where(feedback.c.prediction_id.in_(part))).rowcount
            removed["queue"] += conn.execute(queue.delete().where(queue.c.prediction_id.in_(part))).rowcount
            removed["predictions"] += conn.execute(predictions.delete().where(predictions.c.id.in_(part))).rowcount
    if store.engine.dialect.name == "sqlite" and ids:
        with store.connect() as conn:  # move the deletions out of the write-ahead log into the (overwritten) file
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    result = {"scanned": scanned, "removed": removed, "columns": expression.columns}
    if lacking:
        result["skipped_models"] = len(lacking)
    if no_columns:
        result["note"] = f"no logged input has the column(s) {', '.join(expression.columns)}: nothing matched"
    if audit is not None:
        audit.record("loop.forget", actor, f"prediction-log:{under or model or 'all'}", result)
    logger.info("prediction log erasure: %s", result)
    return result


def _all_lacking(store: LoopStore, query: Any, lacking: set[str]) -> bool:
    """Whether every model path the query covers lacked the expression's columns (a typo, not 'no match')."""
    paths = query.with_only_columns(predictions.c.model_path).distinct()
    with store.connect() as conn:
        covered = {str(r[0]) for r in conn.execute(paths)}
    return covered <= lacking
