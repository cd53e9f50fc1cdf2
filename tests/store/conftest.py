"""Fixtures for the store tests: every test gets its own database file under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.store import AuditLog, KeyStore, RunStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "shipyard.db"


@pytest.fixture
def runs(tmp_path: Path) -> RunStore:
    return RunStore.for_root(tmp_path / "runs")


@pytest.fixture
def keys(db_path: Path) -> KeyStore:
    return KeyStore(db_path)


@pytest.fixture
def audit(db_path: Path) -> AuditLog:
    return AuditLog(db_path)
