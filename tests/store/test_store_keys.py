"""KeyStore: creation, hashing at rest, verification, revocation, thread safety and audit entries."""

from __future__ import annotations

import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipyard.errors import ShipyardError
from shipyard.store import AuditLog, KeyRecord, KeyStore

KEY_RE = re.compile(r"sk_[A-Za-z0-9_-]{32}")


def _all_bytes(db_path: Path) -> bytes:
    """The database file plus its WAL and shared-memory files, so nothing hides in an uncheckpointed WAL."""
    data = b""
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(db_path) + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


def test_create_returns_well_formed_key(keys: KeyStore) -> None:
    key = keys.create("ci", "predict")
    assert KEY_RE.fullmatch(key)
    assert keys.create("other", "admin") != key


def test_key_is_never_stored_in_clear(keys: KeyStore, db_path: Path) -> None:
    plaintexts = [keys.create(f"k{i}", "predict") for i in range(3)]
    assert all(keys.verify(k) for k in plaintexts)
    keys.revoke("k0")
    data = _all_bytes(db_path)
    with sqlite3.connect(db_path) as conn:  # checkpoint too, then read the main file again
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data += db_path.read_bytes()
    for key in plaintexts:
        assert key.encode() not in data
        assert key[8:].encode() not in data  # not even the secret part
        assert key[:8].encode() in data  # the non-secret prefix is stored for lookup


def test_list_and_records_never_expose_secret(keys: KeyStore) -> None:
    key = keys.create("svc", "admin")
    (record,) = keys.list()
    assert isinstance(record, KeyRecord)
    assert record.name == "svc" and record.scope == "admin" and record.prefix == key[:8]
    assert not record.revoked and record.last_used_at is None
    assert key not in repr(record)
    assert not {"salt", "key_hash", "hash", "kdf"} & set(record.__dataclass_fields__)


def test_verify(keys: KeyStore) -> None:
    key = keys.create("svc", "predict")
    record = keys.verify(key)
    assert record is not None and record.name == "svc" and record.scope == "predict"
    assert record.last_used_at is not None
    assert keys.get("svc").last_used_at == record.last_used_at

    assert keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # same prefix, wrong secret
    assert keys.verify("") is None
    assert keys.verify("sk_short") is None
    assert keys.verify("sk_" + "x" * 32) is None  # well-formed, unknown prefix
    assert keys.verify(None) is None  # type: ignore[arg-type]


def test_revoked_key_fails_verify(keys: KeyStore) -> None:
    key = keys.create("svc", "predict")
    other = keys.create("other", "predict")
    assert keys.verify(key) is not None
    record = keys.revoke("svc")
    assert record.revoked and record.revoked_at is not None
    assert keys.verify(key) is None
    assert keys.verify(other) is not None
    with pytest.raises(ShipyardError, match="already revoked"):
        keys.revoke("svc")


def test_revoke_by_prefix(keys: KeyStore) -> None:
    key = keys.create("svc", "predict")
    assert keys.revoke(key[:8]).name == "svc"
    assert keys.verify(key) is None


def test_revoke_unknown(keys: KeyStore) -> None:
    keys.create("svc", "predict")
    with pytest.raises(ShipyardError, match="known keys: svc"):
        keys.revoke("nope")


def test_duplicate_name_and_bad_input(keys: KeyStore) -> None:
    keys.create("svc", "predict")
    with pytest.raises(ShipyardError, match="already exists"):
        keys.create("svc", "admin")
    keys.revoke("svc")
    with pytest.raises(ShipyardError, match="already exists"):
        keys.create("svc", "admin")  # names stay taken after revocation
    with pytest.raises(ShipyardError, match="scope"):
        keys.create("new", "root")  # type: ignore[arg-type]
    with pytest.raises(ShipyardError, match="name"):
        keys.create("", "predict")
    assert [r.name for r in keys.list()] == ["svc"]


def test_concurrent_verify_from_threads(db_path: Path) -> None:
    store = KeyStore(db_path)
    good = [store.create(f"k{i}", "predict") for i in range(4)]
    revoked = store.create("gone", "predict")
    store.revoke("gone")

    def check(i: int) -> tuple[bool, bool]:
        ok = store.verify(good[i % len(good)])
        bad = store.verify(revoked)
        return ok is not None and ok.name == f"k{i % len(good)}", bad is None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(check, range(64)))
    assert all(ok and bad for ok, bad in results)
    assert all(r.last_used_at is not None for r in store.list() if r.name != "gone")


def test_key_changes_are_audited(keys: KeyStore, audit: AuditLog) -> None:
    key = keys.create("svc", "admin", actor="alice")
    keys.revoke("svc", actor="bob")
    entries = audit.entries(target="api_key:svc")
    assert [(e.action, e.actor) for e in entries] == [("key.create", "alice"), ("key.revoke", "bob")]
    assert entries[0].details == {"name": "svc", "scope": "admin", "prefix": key[:8]}
    assert all(key not in str(e) for e in entries)


def test_failed_create_writes_no_audit_entry(keys: KeyStore, audit: AuditLog) -> None:
    keys.create("svc", "predict")
    with pytest.raises(ShipyardError):
        keys.create("svc", "predict")
    assert [e.action for e in audit.entries()] == ["key.create"]
