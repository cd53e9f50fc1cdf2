"""The shared database helper: WAL mode, schema versioning, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shipyard.errors import ShipyardError
from shipyard.store import AuditLog, KeyStore, RunStore, db
from shipyard.store.db import LATEST_VERSION, Database


def test_fresh_database_is_wal_and_at_latest_version(db_path: Path) -> None:
    database = Database(db_path)
    assert database.schema_version() == LATEST_VERSION
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_version", "runs", "api_keys", "audit_log"} <= tables


def test_all_stores_share_one_file(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    RunStore.for_root(root)
    KeyStore.for_root(root)
    AuditLog.for_root(root)
    assert sorted(p.name for p in root.iterdir() if p.suffix == ".db") == ["shipyard.db"]


def test_migrates_old_database_forward(db_path: Path) -> None:
    # build a version-1 database by hand, then open it with the current code
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in db.MIGRATIONS[0].statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
    db._migrated.discard(db_path.resolve())
    assert Database(db_path).schema_version() == LATEST_VERSION
    KeyStore(db_path).create("after-migration", "predict")


def test_newer_schema_is_refused(db_path: Path) -> None:
    Database(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (LATEST_VERSION + 1,))
    db._migrated.discard(db_path.resolve())
    with pytest.raises(ShipyardError, match="newer"):
        Database(db_path)


def test_not_a_database_is_a_shipyard_error(tmp_path: Path) -> None:
    bogus = tmp_path / "shipyard.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ShipyardError):
        RunStore(bogus)
