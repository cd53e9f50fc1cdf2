"""The prediction log: sampled, redacted, batched and crash-safe writes of what a served model saw and said.

Each served model that opts in (``serve.log_predictions``) gets one :class:`PredictionLog`. Every answer gets a
prediction id (uuid4 hex) whether or not it is sampled; a sampled one is queued in memory and written with the
others of its batch in **one transaction**, by a background thread once ``batch_size`` rows wait or
``flush_interval_s`` has passed. A process killed mid-batch therefore loses at most the rows not yet committed;
SQLite's write-ahead log keeps the file consistent (``tests/loop/test_predlog.py`` kills a writer to check).

Text inputs go through the personal-data detector (``shipyard.data.pii``) before they are queued, so no raw
e-mail, phone number or card number reaches the database. Rows expire ``retention_days`` after they were logged;
:func:`purge_expired` deletes them (and their feedback and queue entries) and runs on every flush at most once a
minute, on every ``shipyard monitor`` and from :mod:`shipyard.loop.erasure` for erasure requests.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from shipyard.config.loop import LogPredictionsConfig
from shipyard.data.pii import detect, redact
from shipyard.errors import ShipyardError
from shipyard.loop.store import LoopStore, feedback, predictions, queue

logger = logging.getLogger(__name__)

PURGE_EVERY_S = 60.0


def new_prediction_id() -> str:
    return uuid.uuid4().hex


def redact_inputs(record: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The record with personal data in its text values replaced by ``[TYPE]`` placeholders, and how many."""
    out: dict[str, Any] = {}
    count = 0
    for key, value in record.items():
        if isinstance(value, str) and value:
            findings = detect(value)
            if findings:
                count += len(findings)
                value = redact(value, findings=findings)
        out[str(key)] = value
    return out, count


def summarize_output(output: dict[str, Any]) -> tuple[str | None, float | None, float | None]:
    """Predicted label, top probability and margin (top minus second) of one answer."""
    probabilities = output.get("probabilities")
    if not isinstance(probabilities, dict) or not probabilities:
        return None, None, None
    ranked = sorted((float(p) for p in probabilities.values()), reverse=True)
    second = ranked[1] if len(ranked) > 1 else 0.0
    return str(output.get("label")), ranked[0], ranked[0] - second


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class PredictionLog:
    """Logs one served model version's predictions; share one per version across requests (thread-safe)."""

    def __init__(
        self,
        store: LoopStore,
        *,
        model: str,
        version: int,
        model_path: str,
        config: LogPredictionsConfig,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.model, self.version = model, int(version)
        self.model_path = str(Path(model_path).resolve())  # absolute: retrain and erasure match runs by prefix
        self.config = config
        self._random = random.Random(seed)
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_purge = 0.0
        self.written = 0
        self.failed_batches = 0

    # ---------------------------------------------------------------- producer side
    def log(
        self,
        inputs: Sequence[dict[str, Any]],
        outputs: Sequence[dict[str, Any]],
        shadow: Sequence[dict[str, Any]] | None = None,
    ) -> list[str]:
        """One new id per instance; the sampled ones are queued for the next batch."""
        ids = [new_prediction_id() for _ in outputs]
        self.log_with_ids(ids, inputs, outputs, shadow)
        return ids

    def log_with_ids(
        self,
        ids: Sequence[str],
        inputs: Sequence[dict[str, Any]],
        outputs: Sequence[dict[str, Any]],
        shadow: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Queue the sampled instances under ids given already (the server answers before the shadow scores)."""
        if not len(ids) == len(inputs) == len(outputs) or (shadow is not None and len(shadow) != len(outputs)):
            raise ShipyardError("ids, inputs, outputs and shadow outputs differ in length", where="prediction log")
        now = self._clock()
        rows = []
        for i, (record, output) in enumerate(zip(inputs, outputs, strict=True)):
            if self.config.sample < 1.0 and self._random.random() >= self.config.sample:
                continue
            rows.append(self._row(ids[i], record, output, shadow[i] if shadow is not None else None, now))
        if rows:
            with self._lock:
                self._pending.extend(rows)
                full = len(self._pending) >= self.config.batch_size
            if full:
                if self._thread is None:
                    self.flush()
                else:
                    self._wake.set()

    def _row(self, pid: str, record: dict, output: dict, shadow: dict | None, now: float) -> dict[str, Any]:
        stored, n_redacted = redact_inputs(record) if self.config.redact else (dict(record), 0)
        label, confidence, margin = summarize_output(output)
        return {
            "id": pid,
            "model": self.model,
            "version": self.version,
            "model_path": self.model_path,
            "at": now,
            "expires_at": now + self.config.retention_days * 86400.0,
            "inputs": json.dumps(stored, default=_plain),
            "outputs": json.dumps(output, default=_plain),
            "label": label,
            "confidence": confidence,
            "margin": margin,
            "shadow": json.dumps(shadow, default=_plain) if shadow is not None else None,
            "redactions": n_redacted,
        }

    # ---------------------------------------------------------------- writer side
    def flush(self) -> int:
        """Write what waits, as one transaction; returns the rows written (0 when the write failed)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            with self.store.begin() as conn:
                conn.execute(predictions.insert(), batch)
        except sa.exc.SQLAlchemyError as exc:
            # the log must never take the service down: the batch is dropped and counted, and the log says why
            self.failed_batches += 1
            logger.error("prediction log for %s: a batch of %d rows was not written: %s", self.model, len(batch), exc)
            return 0
        self.written += len(batch)
        now = self._clock()
        if now - self._last_purge >= PURGE_EVERY_S:
            self._last_purge = now
            purge_expired(self.store, now=now)
        return len(batch)

    def start(self) -> PredictionLog:
        """Flush from a background thread (every ``flush_interval_s``, or as soon as a batch is full)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"predlog-{self.model}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left (a clean shutdown loses nothing)."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


def purge_expired(store: LoopStore, *, now: float | None = None) -> int:
    """Delete predictions past their retention, with their feedback and queue entries; returns how many."""
    now = time.time() if now is None else now
    expired = sa.select(predictions.c.id).where(predictions.c.expires_at < now)
    with store.begin() as conn:
        conn.execute(feedback.delete().where(feedback.c.prediction_id.in_(expired)))
        conn.execute(queue.delete().where(queue.c.prediction_id.in_(expired)))
        count = conn.execute(predictions.delete().where(predictions.c.expires_at < now)).rowcount or 0
    if count:
        logger.info("prediction log: %d rows past their retention deleted", count)
    return int(count)


def load_predictions(
    store: LoopStore,
    model: str,
    *,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Logged rows as a frame: one column per input, plus ``_id``, ``_at``, ``_version``, ``_label``,
    ``_confidence``, ``_margin``, ``_outputs`` (dict) and ``_shadow`` (dict or None). Newest first."""
    query = sa.select(predictions).where(predictions.c.model == model).order_by(predictions.c.at.desc())
    if since is not None:
        query = query.where(predictions.c.at >= since)
    if until is not None:
        query = query.where(predictions.c.at < until)
    if ids is not None:
        query = query.where(predictions.c.id.in_(list(ids)))
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return rows_to_frame(rows)


def rows_to_frame(rows: Sequence[Any]) -> pd.DataFrame:
    records = []
    for r in rows:
        record = json.loads(r["inputs"])
        record.update(
            _id=r["id"],
            _at=r["at"],
            _version=r["version"],
            _model_path=r["model_path"],
            _label=r["label"],
            _confidence=r["confidence"],
            _margin=r["margin"],
            _outputs=json.loads(r["outputs"]),
            _shadow=json.loads(r["shadow"]) if r["shadow"] else None,
        )
        records.append(record)
    return pd.DataFrame.from_records(records)


def input_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not str(c).startswith("_")]
