"""Shared fixtures: the shared data folder (tests that need it skip with a reason when it is absent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.settings import find_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = find_data_dir()
    if path is None:
        pytest.skip("shared data folder not found: set SHIPYARD_DATA_DIR to the folder holding mnist/, adult/ ...")
    return path


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures logging for its process; in-process CLI tests must not leak that into later tests."""
    import logging

    logger = logging.getLogger("shipyard")
    level, root_handlers = logger.level, list(logging.getLogger().handlers)
    yield
    logger.setLevel(level)
    logging.getLogger().handlers[:] = root_handlers
