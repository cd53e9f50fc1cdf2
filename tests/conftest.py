"""Shared fixtures: the shared data folder (tests that need it skip with a reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.settings import find_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = find_data_dir()
    if path is None:
        pytest.skip("shared data folder not found: set SHIPYARD_DATA_DIR to the folder holding mnist/, adult/ ...")
    return path
