"""The loop's tables (SQLAlchemy Core): logged predictions, feedback, the labelling queue and events.

By default they live in the run store's SQLite file (``<runs_root>/shipyard.db``, created 0600 like every store);
``LoopSettings.database_url`` points them at any SQLAlchemy database instead (PostgreSQL for a real deployment).
The tables are created on first use (``CREATE TABLE IF NOT EXISTS``); they sit beside the run store's own tables,
which the run store versions separately.

Times are POSIX seconds (``Float``) so that windows and retention are plain comparisons on every backend.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import ShipyardError
from shipyard.store.db import DB_FILENAME, Database

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

predictions = sa.Table(
    "loop_predictions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # uuid4 hex, returned to the caller
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("model_path", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),  # JSON object, after personal-data redaction
    sa.Column("outputs", sa.Text, nullable=False),  # JSON object: label + probabilities, or value
    sa.Column("label", sa.String(200)),  # the predicted label (classification)
    sa.Column("confidence", sa.Float),  # top probability
    sa.Column("margin", sa.Float),  # top probability minus the second
    sa.Column("shadow", sa.Text),  # JSON: the challenger's outputs in shadow mode (never returned)
    sa.Column("redactions", sa.Integer, nullable=False, default=0),
    sa.Index("loop_predictions_model_at", "model", "at"),
    sa.Index("loop_predictions_expires", "expires_at"),
)

feedback = sa.Table(
    "loop_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # unique: a second answer for the same prediction is refused (a duplicate), never silently overwrites
    sa.Column("prediction_id", sa.String(32), nullable=False, unique=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # label | value | rating | thumbs
    sa.Column("label", sa.String(200)),  # the true label (given, or the correction, or the prediction on thumbs up)
    sa.Column("value", sa.Float),
    sa.Column("rating", sa.Integer),
    sa.Column("thumbs", sa.String(4)),  # up | down
    sa.Column("correct", sa.Boolean),  # whether the prediction was right, when that is known
    sa.Column("source", sa.String(16), nullable=False),  # api | import | queue
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("loop_feedback_model_at", "model", "at"),
)

queue = sa.Table(
    "loop_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("prediction_id", sa.String(32), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=False),  # the uncertainty that put it here
    sa.Column("status", sa.String(16), nullable=False),  # queued | labelled | skipped
    sa.Column("at", sa.Float, nullable=False),
    sa.UniqueConstraint("model", "prediction_id", name="loop_queue_once"),
)

events = sa.Table(
    "loop_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # drift_check | alert | decision | promote | rollback
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON
    sa.Index("loop_events_model_kind_at", "model", "kind", "at"),
)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def default_url(runs_root: Path) -> str:
    """The run store's SQLite file, created 0600 first (it will hold logged inputs)."""
    db_path = Path(runs_root).expanduser().resolve() / DB_FILENAME
    Database(db_path)  # creates the file private, in WAL mode, with the run store's own tables
    return f"sqlite:///{db_path}"


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash loses uncommitted work, never corrupts
    cursor.execute("PRAGMA secure_delete = ON")  # erased and expired rows are overwritten, not just unlinked
    cursor.close()


def engine_for(url: str) -> Engine:
    """One engine per URL per process, tables created on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ShipyardError(
                f"cannot use the loop database URL: {exc}",
                where="loop.database_url",
                hint="a SQLAlchemy URL such as sqlite:////path/loop.db or postgresql+psycopg://user@host/db",
            ) from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _on_sqlite_connect)
        try:
            metadata.create_all(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise ShipyardError(f"cannot prepare the loop tables: {exc}", where=_safe(url)) from None
        _engines[url] = engine
        return engine


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "loop.database_url"


class LoopStore:
    """The loop's database; every method opens a short transaction, so one object is safe across threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    @classmethod
    def open(cls, runs_root: Path, database_url: str | None = None) -> LoopStore:
        return cls(database_url or default_url(runs_root))

    def __repr__(self) -> str:
        return f"LoopStore({_safe(self.url)!r})"

    def begin(self) -> Any:
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    # ------------------------------------------------------------------ events
    def record_event(
        self, model: str, kind: str, *, actor: str, reason: str, details: dict[str, Any], at: float
    ) -> int:
        with self.begin() as conn:
            result = conn.execute(
                events.insert().values(
                    model=model, kind=kind, at=at, actor=actor, reason=reason, details=json.dumps(details, default=str)
                )
            )
            return int(result.inserted_primary_key[0])

    def list_events(self, model: str | None = None, kinds: tuple[str, ...] = (), limit: int = 200) -> list[dict]:
        query = sa.select(events).order_by(events.c.at.desc(), events.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(events.c.model == model)
        if kinds:
            query = query.where(events.c.kind.in_(kinds))
        with self.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    def models(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(sa.select(predictions.c.model).distinct()).all()
        return sorted(r[0] for r in rows)


def under_folder(folder: str | Path) -> Any:
    """Predictions made by a model in ``folder`` or below it (``runs/a`` must not match ``runs/ab``)."""
    base = str(Path(folder).resolve())
    return sa.or_(predictions.c.model_path == base, predictions.c.model_path.startswith(base + "/", autoescape=True))
