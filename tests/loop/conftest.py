"""Fixtures for the loop tests: a loop store (SQLite in a temporary runs folder, and PostgreSQL when a server is
given) and a model folder's shipyard.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shipyard.loop.store import LoopStore, metadata

# a PostgreSQL database the loop tests may empty, e.g. postgresql+psycopg://postgres@/shipyard_test?host=/tmp/pg
POSTGRES_URL_ENV = "SHIPYARD_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LoopStore:
    """The same tests on both backends; PostgreSQL only where a server is given (it is an external service)."""
    if request.param == "sqlite":
        return LoopStore.open(tmp_path / "runs")
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server given (set {POSTGRES_URL_ENV} to a database the tests may empty)")
    store = LoopStore(url)  # the driver (psycopg) missing is an error here, not a skip
    with store.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    return store


def write_model_meta(folder: Path, *, task: str = "classification", labels: list[str] | None = None) -> Path:
    """A model folder's shipyard.json: the part of an artefact the feedback checks read (task, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": 1, "task": task, "labels": labels, "target": "y", "features": []}
    (folder / "shipyard.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model_meta(tmp_path / "model", labels=["neg", "pos"])


@pytest.fixture
def make_model_meta():
    return write_model_meta
