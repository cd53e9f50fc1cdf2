"""AuditLog: append-only records, filtering, and refusal of updates and deletes at the database level."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shipyard.errors import ShipyardError
from shipyard.store import AuditLog


def test_record_and_entries(audit: AuditLog) -> None:
    first = audit.record("data.erase", "alice", "subject:42", {"rows": 3, "files": ["a.csv"]})
    second = audit.record("data.erase", "bob", "subject:7", {"rows": 1})
    audit.record("key.create", "alice", "api_key:ci", {})
    assert second > first

    entries = audit.entries()
    assert [e.target for e in entries] == ["subject:42", "subject:7", "api_key:ci"]
    assert entries[0].details == {"rows": 3, "files": ["a.csv"]}
    assert entries[0].actor == "alice" and entries[0].at.tzinfo is not None
    assert [e.actor for e in audit.entries(target="subject:7")] == ["bob"]
    assert [e.target for e in audit.entries(action="data.erase")] == ["subject:42", "subject:7"]
    assert audit.entries(target="nobody") == []


def test_no_update_or_delete_api() -> None:
    public = {name for name in dir(AuditLog) if not name.startswith("_")}
    assert public == {"record", "entries", "for_root"}


def test_database_refuses_update_and_delete(audit: AuditLog, db_path: Path) -> None:
    audit.record("data.erase", "alice", "subject:42", {})
    with sqlite3.connect(db_path) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_log SET actor = 'mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
    assert [e.actor for e in audit.entries()] == ["alice"]


def test_bad_entries_are_rejected(audit: AuditLog) -> None:
    with pytest.raises(ShipyardError, match="actor"):
        audit.record("data.erase", "", "subject:1", {})
    with pytest.raises(ShipyardError, match="details"):
        audit.record("data.erase", "alice", "subject:1", "not a dict")  # type: ignore[arg-type]
    with pytest.raises(ShipyardError, match="JSON"):
        audit.record("data.erase", "alice", "subject:1", {"x": object()})
    assert audit.entries() == []
