"""Feedback on logged predictions: one answer per prediction, checked against the model's label set.

An answer is one of: the true ``label`` (classification), the true ``value`` (regression), a ``rating`` (1-5, how
good the answer was), or ``thumbs`` up / down with an optional ``correction`` (the right label or value). The
label set is the one in the served artefact's ``shipyard.json``. Every problem is a :class:`FeedbackError` that
says what is wrong (its ``status`` is the HTTP code the server answers with) and nothing is written: an unknown
prediction id (404), a label outside the set or a malformed answer (422), a second answer for a prediction (409).
A CSV import is checked row by row first and written in one transaction only when every row is good.

Applications (the support and finmon apps) push the corrections their users make through
:func:`submit_correction` (model name, input, label, source): it answers a logged prediction when the app has its
id, and otherwise records the input itself (redacted, with a retention) so that ``shipyard retrain`` learns from it
and ``shipyard data forget`` reaches it.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from shipyard.errors import ShipyardError
from shipyard.loop.predlog import new_prediction_id, redact_inputs, rows_to_frame
from shipyard.loop.store import LoopStore, feedback, predictions, under_folder

KINDS = ("label", "value", "rating", "thumbs")
MAX_IMPORT_ERRORS = 20
# the version of an input an application recorded itself (no served version answered it): monitoring leaves
# these out of the drift window, since people correct the wrong answers far more often than the right ones
APP_VERSION = 0
_SOURCE = re.compile(r"[a-z][a-z0-9_-]{0,15}")


class FeedbackError(ShipyardError):
    def __init__(self, message: str, *, status: int, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, where=where, hint=hint)
        self.status = status


@dataclass(frozen=True)
class FeedbackItem:
    prediction_id: str
    label: str | None = None
    value: float | None = None
    rating: int | None = None
    thumbs: str | None = None  # "up" | "down"
    correction: str | float | None = None  # with thumbs down: the right label (or value)


@lru_cache(maxsize=64)
def model_meta(model_path: str) -> dict[str, Any]:
    """``task`` and ``labels`` of the artefact a prediction came from (a model folder or a run folder)."""
    path = Path(model_path)
    for candidate in (path / "shipyard.json", path / "model" / "shipyard.json"):
        if candidate.is_file():
            meta = json.loads(candidate.read_text(encoding="utf-8"))
            return {"task": meta.get("task"), "labels": meta.get("labels"), "target": meta.get("target")}
    raise FeedbackError(
        "the model this prediction came from is no longer on disk, so its label set cannot be checked",
        status=409,
        where=str(path),
    )


def _number(value: Any, field: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FeedbackError(f"{field} must be a number, got {value!r}", status=422, where=where) from None
    if not math.isfinite(number):
        raise FeedbackError(f"{field} must be finite, got {value!r}", status=422, where=where)
    return number


def _check_label(label: Any, labels: list[str] | None, field: str, where: str) -> str:
    text = str(label).strip()
    if labels is not None and text not in labels:
        shown = ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else "")
        raise FeedbackError(f"{field} {text!r} is not one of the model's labels ({shown})", status=422, where=where)
    return text


def validate(item: FeedbackItem, prediction: Any, *, where: str) -> dict[str, Any]:
    """The row to insert for ``item`` about ``prediction`` (a ``loop_predictions`` row), or a FeedbackError."""
    given = [k for k in KINDS if getattr(item, k) not in (None, "")]
    if len(given) != 1:
        raise FeedbackError(
            f"give exactly one of {', '.join(KINDS)} (got {', '.join(given) or 'none'})", status=422, where=where
        )
    kind = given[0]
    meta = model_meta(prediction["model_path"])
    classification = meta["task"] == "classification"
    row: dict[str, Any] = {"kind": kind, "label": None, "value": None, "rating": None, "thumbs": None, "correct": None}
    if item.correction not in (None, "") and kind != "thumbs":
        raise FeedbackError("a correction goes with thumbs down only", status=422, where=where)
    if kind == "label":
        if not classification:
            raise FeedbackError("this model predicts values: send `value`, not `label`", status=422, where=where)
        row["label"] = _check_label(item.label, meta["labels"], "label", where)
        row["correct"] = row["label"] == prediction["label"]
    elif kind == "value":
        if classification:
            raise FeedbackError("this model predicts labels: send `label`, not `value`", status=422, where=where)
        row["value"] = _number(item.value, "value", where)
    elif kind == "rating":
        rating = _number(item.rating, "rating", where)
        if rating != int(rating) or not 1 <= rating <= 5:
            raise FeedbackError(
                f"rating must be a whole number from 1 to 5, got {item.rating!r}", status=422, where=where
            )
        row["rating"] = int(rating)
    else:
        thumbs = str(item.thumbs).strip().lower()
        if thumbs not in ("up", "down"):
            raise FeedbackError(f"thumbs must be 'up' or 'down', got {item.thumbs!r}", status=422, where=where)
        row["thumbs"], row["correct"] = thumbs, thumbs == "up"
        if thumbs == "up":
            row["label"] = prediction["label"] if classification else None
            row["value"] = None if classification else json.loads(prediction["outputs"]).get("value")
        elif item.correction not in (None, ""):
            if classification:
                row["label"] = _check_label(item.correction, meta["labels"], "correction", where)
            else:
                row["value"] = _number(item.correction, "correction", where)
    return row


def _prediction(conn: Any, prediction_id: str, where: str) -> Any:
    pid = str(prediction_id or "").strip()
    row = conn.execute(sa.select(predictions).where(predictions.c.id == pid)).mappings().first()
    if row is None:
        raise FeedbackError(
            f"unknown prediction id {pid!r}",
            status=404,
            where=where,
            hint="ids come from a prediction response; a prediction that was not sampled, or is past its "
            "retention, cannot take feedback",
        )
    if conn.execute(sa.select(feedback.c.id).where(feedback.c.prediction_id == pid)).first() is not None:
        raise FeedbackError(f"prediction {pid!r} already has feedback (a duplicate)", status=409, where=where)
    return row


def record_feedback(
    store: LoopStore, item: FeedbackItem, *, actor: str, source: str = "api", model: str | None = None
) -> dict[str, Any]:
    """Check and store one answer; returns the stored row. ``model``: refuse a prediction of another model."""
    where = f"prediction {item.prediction_id!r}"
    with store.begin() as conn:
        prediction = _prediction(conn, item.prediction_id, where)
        if model is not None and prediction["model"] != model:
            raise FeedbackError(f"unknown prediction id {item.prediction_id!r} for model {model!r}", status=404)
        row = validate(item, prediction, where=where)
        row.update(
            prediction_id=prediction["id"], model=prediction["model"], source=source, actor=actor, at=time.time()
        )
        try:
            conn.execute(feedback.insert().values(**row))
        except sa.exc.IntegrityError:  # a concurrent answer for the same prediction won the race
            raise FeedbackError(
                f"prediction {item.prediction_id!r} already has feedback (a duplicate)", status=409
            ) from None
    return row


def _item_from_csv(record: dict[str, str]) -> FeedbackItem:
    def get(key: str) -> str | None:
        value = (record.get(key) or "").strip()
        return value or None

    return FeedbackItem(
        prediction_id=get("prediction_id") or "",
        label=get("label"),
        value=get("value"),  # type: ignore[arg-type]  # checked as a number by validate()
        rating=get("rating"),  # type: ignore[arg-type]
        thumbs=get("thumbs"),
        correction=get("correction"),
    )


def import_feedback_csv(store: LoopStore, path: str | Path, *, actor: str, source: str = "import") -> dict[str, Any]:
    """Import a CSV with ``prediction_id`` and one of label / value / rating / thumbs (+ correction) per row.

    All or nothing: every row is checked first; any bad row -> one ShipyardError listing the bad rows (file
    row numbers, header = row 1) and nothing is written.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ShipyardError(f"cannot read the feedback file: {exc}", where=str(path)) from None
    if "prediction_id" not in header or not set(KINDS) & set(header):
        raise ShipyardError(
            f"the header must name prediction_id and one of {', '.join(KINDS)}; "
            f"it has {', '.join(header) or 'nothing'}",
            where=f"{path}, row 1",
        )
    return import_feedback_records(
        store, list(enumerate(records, start=2)), where=str(path), actor=actor, source=source
    )


def import_feedback_records(
    store: LoopStore,
    records: list[tuple[int, dict[str, str]]],
    *,
    where: str,
    actor: str,
    source: str = "import",
    model: str | None = None,
    on_written: Any = None,
) -> dict[str, Any]:
    """Check ``(row number, record)`` pairs, then write them all in one transaction, or none (errors name rows).

    ``model``: refuse predictions of another model. ``on_written(conn, rows)`` runs inside the same transaction.
    """
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    now = time.time()
    name = Path(where).name
    with store.begin() as conn:
        for number, record in records:
            item = _item_from_csv(record)
            place = f"{name}, row {number}"
            try:
                if item.prediction_id in seen:
                    raise FeedbackError(
                        f"prediction {item.prediction_id!r} is answered twice (also row {seen[item.prediction_id]})",
                        status=409,
                    )
                prediction = _prediction(conn, item.prediction_id, place)
                if model is not None and prediction["model"] != model:
                    raise FeedbackError(f"prediction {item.prediction_id!r} is not one of {model!r}'s", status=404)
                row = validate(item, prediction, where=place)
            except FeedbackError as exc:
                problems.append(f"row {number}: {exc.message}")
                continue
            seen[item.prediction_id] = number
            row.update(prediction_id=prediction["id"], model=prediction["model"], source=source, actor=actor, at=now)
            rows.append(row)
        if problems:
            shown = "; ".join(problems[:MAX_IMPORT_ERRORS])
            more = f" (and {len(problems) - MAX_IMPORT_ERRORS} more)" if len(problems) > MAX_IMPORT_ERRORS else ""
            raise ShipyardError(
                f"{len(problems)} bad row(s), nothing imported: {shown}{more}",
                where=where,
                hint="fix them and import again",
            )
        if rows:
            conn.execute(feedback.insert(), rows)
            if on_written is not None:
                on_written(conn, rows)
    by_model: dict[str, int] = {}
    for row in rows:
        by_model[row["model"]] = by_model.get(row["model"], 0) + 1
    return {"imported": len(rows), "by_model": by_model}


def labelled_rows(
    store: LoopStore,
    model: str | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
    under: str | Path | None = None,
) -> pd.DataFrame:
    """Feedback that gives a target (label or value), joined to the logged inputs: what a retrain learns from.

    ``model``: one served name; ``under``: predictions made by models inside this folder (a run folder);
    ``since`` / ``until``: when the feedback arrived. Columns: the logged inputs, ``_target``, ``_correct``,
    ``_label`` (the prediction), ``_id``, ``_at``, ``_feedback_at``, ``_outputs``, ``_shadow``.
    """
    query = (
        sa.select(
            predictions,
            feedback.c.label.label("fb_label"),
            feedback.c.value.label("fb_value"),
            feedback.c.correct,
            feedback.c.at.label("fb_at"),
        )
        .join(feedback, feedback.c.prediction_id == predictions.c.id)
        .where(sa.or_(feedback.c.label.is_not(None), feedback.c.value.is_not(None)))
        .order_by(feedback.c.at)
    )
    if model is not None:
        query = query.where(predictions.c.model == model)
    if under is not None:
        query = query.where(under_folder(under))
    if since is not None:
        query = query.where(feedback.c.at >= since)
    if until is not None:
        query = query.where(feedback.c.at < until)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    frame = rows_to_frame(rows)
    if rows:
        frame["_target"] = [r["fb_label"] if r["fb_label"] is not None else r["fb_value"] for r in rows]
        frame["_correct"] = [r["correct"] for r in rows]
        frame["_feedback_at"] = [r["fb_at"] for r in rows]
    return frame


def feedback_accuracy(
    store: LoopStore, model: str, *, since: float | None = None, until: float | None = None
) -> tuple[int, float | None]:
    """How many answers say whether the prediction was right, and the share that were."""
    query = sa.select(feedback.c.correct).where(feedback.c.model == model, feedback.c.correct.is_not(None))
    if since is not None:
        query = query.where(feedback.c.at >= since)
    if until is not None:
        query = query.where(feedback.c.at < until)
    with store.connect() as conn:
        values = [bool(r[0]) for r in conn.execute(query)]
    return len(values), (sum(values) / len(values) if values else None)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (what apps often hold) as JSON values."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _app_store(model_path: Path, database_url: str | None) -> LoopStore:
    """The loop store of the runs folder that holds ``model_path`` (a run folder, or its ``model/``)."""
    for run_dir in (model_path, model_path.parent):
        if (run_dir / "run.json").is_file():
            return LoopStore.open(run_dir.parent, database_url)
    if database_url:
        return LoopStore(database_url)
    raise ShipyardError(
        "cannot tell which loop store to write to: the model is not inside a run folder",
        where=str(model_path),
        hint="pass store= (a LoopStore) or database_url=",
    )


def submit_correction(  # long: one documented entry point; every argument is checked here, up front
    model: str,
    inputs: dict[str, Any],
    label: str | float,
    *,
    source: str,
    model_path: str | Path,
    prediction_id: str | None = None,
    predicted: str | float | None = None,
    actor: str | None = None,
    store: LoopStore | None = None,
    database_url: str | None = None,
    retention_days: float = 30.0,
) -> dict[str, Any]:
    """Store one correction an application's user made: the true ``label`` (or value) for ``inputs``.

    ``model``: the served name; ``model_path``: the run folder (or its model folder) that answered, which gives the
    label set it is checked against and the run a ``shipyard retrain`` of it will learn from. ``source``: who sends
    it (``support``, ``finmon``; lower case, at most 16 characters). ``prediction_id``: the id the server answered
    with, when the app has it; if that prediction was logged, the correction answers it (its logged input wins over
    ``inputs``), else ``inputs`` are recorded under that id. ``predicted``: what the model said, if known; it sets
    whether the model was right (the accuracy that monitoring reports). Inputs are redacted like the prediction log
    and kept ``retention_days``. ``store`` / ``database_url``: default, the store of the runs folder holding
    ``model_path``. Returns the stored row (``prediction_id``, ``model``, ``label`` / ``value``, ``source``,
    ``logged``: whether it answered a logged prediction). Errors are :class:`FeedbackError` (422 a bad label or
    input, 409 a second correction for the same prediction) or :class:`ShipyardError`; nothing is written then.
    """
    if not isinstance(source, str) or not _SOURCE.fullmatch(source):
        raise FeedbackError(
            f"source must be a lower-case name of at most 16 characters, got {source!r}", status=422, where="source"
        )
    if not isinstance(inputs, dict) or not inputs:
        raise FeedbackError("inputs must be a non-empty mapping of feature -> value", status=422, where="inputs")
    if not math.isfinite(retention_days) or retention_days <= 0:
        raise FeedbackError(f"retention_days must be positive, got {retention_days!r}", status=422)
    path = Path(model_path).expanduser().resolve()
    store = store or _app_store(path, database_url)
    meta = model_meta(str(path))
    kind = "label" if meta["task"] == "classification" else "value"
    pid = str(prediction_id).strip() if prediction_id else new_prediction_id()
    where = f"correction from {source} for {model!r} ({pid})"
    now = time.time()
    with store.begin() as conn:
        logged = conn.execute(sa.select(predictions).where(predictions.c.id == pid)).mappings().first()
        if logged is None:
            stored, n_redacted = redact_inputs(inputs)
            guess = None if predicted is None else str(predicted)
            logged = {
                "id": pid,
                "model": model,
                "version": APP_VERSION,
                "model_path": str(path),
                "at": now,
                "expires_at": now + retention_days * 86400.0,
                "inputs": json.dumps(stored, default=_plain),
                "outputs": json.dumps({kind: predicted} if predicted is not None else {}, default=_plain),
                "label": guess if kind == "label" else None,
                "confidence": None,
                "margin": None,
                "shadow": None,
                "redactions": n_redacted,
            }
            conn.execute(predictions.insert().values(**logged))
        elif logged["model"] != model:
            raise FeedbackError(f"prediction {pid!r} is not one of {model!r}'s", status=404, where=where)
        _prediction(conn, pid, where)  # refuses a second answer
        row = validate(FeedbackItem(pid, **{kind: label}), logged, where=where)
        if kind == "label" and logged["label"] is None:  # (the transaction writes nothing if validate refuses)
            row["correct"] = None  # the app did not say what the model answered
        row.update(prediction_id=pid, model=model, source=source, actor=actor or source, at=now)
        try:
            conn.execute(feedback.insert().values(**row))
        except sa.exc.IntegrityError:
            raise FeedbackError(f"prediction {pid!r} already has feedback (a duplicate)", status=409) from None
    return {**row, "logged": logged["version"] != APP_VERSION}
