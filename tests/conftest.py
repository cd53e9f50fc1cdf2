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
def _reset_logging() -> Iterator[None]:
    """CLI commands configure logging for their process (levels of shipyard loggers, root handlers), and some
    run inside module-scoped fixtures; every test starts from the library's own defaults instead."""
    import logging

    root_handlers = list(logging.getLogger().handlers)
    for name in list(logging.root.manager.loggerDict):
        if name == "shipyard" or name.startswith("shipyard."):
            logger = logging.getLogger(name)
            logger.setLevel(logging.NOTSET)
            logger.disabled, logger.propagate = False, True
    yield
    logging.getLogger().handlers[:] = root_handlers
