"""Shared SQLite plumbing for the store: short-lived connections, WAL mode and schema migrations.

Every store (runs, API keys, audit log) may share one database file (``<runs_root>/shipyard.db``); each owns its
own tables. Connections are opened per operation and closed straight after, so a store object is safe to use
from several threads (the REST server verifies keys from a thread pool): SQLite serialises the writers and
``busy_timeout`` makes a writer wait for the lock instead of failing.

The schema is versioned by the ``schema_version`` table (one row). ``MIGRATIONS`` is an ordered list; a database
is brought up to the newest version under an exclusive write lock the first time a store opens it, so two
processes that open a fresh file at once do not both try to create the tables.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from shipyard.errors import ShipyardError
from shipyard.io import PRIVATE_MODE

logger = logging.getLogger(__name__)

DB_FILENAME = "shipyard.db"
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``statements`` run in order inside a single transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs table",
        (
            """
            CREATE TABLE runs (
                run_id       TEXT PRIMARY KEY,
                run_dir      TEXT NOT NULL,
                name         TEXT NOT NULL,
                task         TEXT NOT NULL,
                model_type   TEXT NOT NULL,
                status       TEXT NOT NULL,
                config       TEXT NOT NULL,
                config_hash  TEXT NOT NULL,
                seed         INTEGER NOT NULL,
                metrics      TEXT NOT NULL DEFAULT '{}',
                flags        TEXT NOT NULL DEFAULT '{}',
                error        TEXT,
                duration_s   REAL,
                started_at   TEXT NOT NULL,
                finished_at  TEXT
            )
            """,
            "CREATE INDEX runs_started_at ON runs (started_at)",
            "CREATE INDEX runs_status ON runs (status)",
        ),
    ),
    Migration(
        2,
        "api keys table",
        (
            """
            CREATE TABLE api_keys (
                id            INTEGER PRIMARY KEY AUTOINCREMENT,
                name          TEXT NOT NULL UNIQUE,
                prefix        TEXT NOT NULL,
                scope         TEXT NOT NULL,
                kdf           TEXT NOT NULL,
                salt          BLOB NOT NULL,
                key_hash      BLOB NOT NULL,
                created_at    TEXT NOT NULL,
                last_used_at  TEXT,
                revoked_at    TEXT
            )
            """,
            "CREATE INDEX api_keys_prefix ON api_keys (prefix)",
        ),
    ),
    Migration(
        3,
        "append-only audit log",
        (
            """
            CREATE TABLE audit_log (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                at          TEXT NOT NULL,
                action      TEXT NOT NULL,
                actor       TEXT NOT NULL,
                target      TEXT NOT NULL,
                details     TEXT NOT NULL
            )
            """,
            "CREATE INDEX audit_log_target ON audit_log (target)",
            """
            CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
            """,
            """
            CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
            """,
        ),
    ),
    Migration(
        4,
        "the process that runs each run (dead runs are found by process id and host)",
        (
            "ALTER TABLE runs ADD COLUMN pid INTEGER",
            "ALTER TABLE runs ADD COLUMN host TEXT",
            "ALTER TABLE runs ADD COLUMN pid_started INTEGER",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_migrated: set[Path] = set()
_migrate_lock = threading.Lock()


def utc_now() -> str:
    """The current UTC time as ISO 8601 text with microseconds (sorts as text in time order)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (Path, datetime)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(obj: Any, *, field: str = "value") -> str:
    """JSON text for a stored column; numpy scalars and arrays become plain numbers and lists."""
    try:
        return json.dumps(obj, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ShipyardError(f"cannot store {field} as JSON: {exc}", where=field) from exc


def loads(text: str | None) -> Any:
    return json.loads(text) if text else {}


def _create_private(db_path: Path) -> None:
    """Create the database file 0600 before SQLite opens it: it holds key hashes, the audit log and run configs.

    SQLite gives the ``-wal`` and ``-shm`` files the main file's mode, so they are private too. A file this user
    created earlier with a wider mode (older shipyard) is narrowed.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(db_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_MODE))
    except FileExistsError:
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            try:
                info = path.stat()
                if info.st_uid == os.getuid() and info.st_mode & 0o077:
                    path.chmod(PRIVATE_MODE)
            except OSError:  # gone meanwhile, or not ours to change: SQLite reports real problems
                continue


def _open(db_path: Path) -> sqlite3.Connection:
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        if not db_path.exists():
            _create_private(db_path)
        # isolation_level=None: autocommit; transactions are opened explicitly with BEGIN IMMEDIATE.
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise ShipyardError(f"cannot open the database: {exc}", where=str(db_path)) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ShipyardError(f"not a usable SQLite database: {exc}", where=str(db_path)) from exc
    return conn


class Database:
    """One SQLite file. Opens a fresh connection per operation; safe to share between threads."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(db_path).expanduser().resolve()
        self._ensure_schema()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads (autocommit); closed on exit."""
        conn = _open(self.path)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise ShipyardError(f"database error: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE`` (write lock taken up front); commits on success."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def schema_version(self) -> int:
        with self.connect() as conn:
            return _read_version(conn)

    def _ensure_schema(self) -> None:
        with _migrate_lock:
            if self.path in _migrated and self.path.exists():
                return
            try:
                _create_private(self.path)
            except OSError as exc:
                raise ShipyardError(f"cannot create the database: {exc}", where=str(self.path)) from exc
            conn = _open(self.path)
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    logger.warning("%s: could not switch to WAL mode (journal_mode=%s)", self.path, mode)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                    current = _read_version(conn)
                    if current > LATEST_VERSION:
                        raise ShipyardError(
                            f"database schema version {current} is newer than this shipyard supports "
                            f"({LATEST_VERSION})",
                            where=str(self.path),
                            hint="upgrade shipyard",
                        )
                    for migration in MIGRATIONS:
                        if migration.version <= current:
                            continue
                        logger.info(
                            "%s: migrating schema to version %d (%s)",
                            self.path,
                            migration.version,
                            migration.description,
                        )
                        for statement in migration.statements:
                            conn.execute(statement)
                        conn.execute("DELETE FROM schema_version")
                        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (migration.version,))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise ShipyardError(f"cannot prepare the database: {exc}", where=str(self.path)) from exc
            finally:
                conn.close()
            _migrated.add(self.path)


def _read_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


class StoreTable:
    """Base of the stores kept in the shared database (runs, keys, audit log): one Database, found by path or by
    the runs folder it sits in."""

    def __init__(self, db_path: Path) -> None:
        self.db = Database(db_path)

    @classmethod
    def for_root(cls, runs_root: Path) -> Self:
        """The store for a runs folder: ``runs_root/shipyard.db``."""
        return cls(Path(runs_root) / DB_FILENAME)
