from __future__ import annotations

from pathlib import Path

import pytest
from support_helpers import support_config

from shipyard.apps.support.assistant import Assistant
from shipyard.apps.support.config import load_support_config


@pytest.fixture(scope="session")
def support_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("support")


@pytest.fixture(scope="session")
def searcher(support_root: Path):  # one loaded model for every assistant of the session
    from shipyard.models.searcher import Searcher

    cfg, _ = load_support_config(support_config(support_root / "base"))
    return Searcher.load(cfg.retrieval_run)


@pytest.fixture
def make_assistant(support_root: Path, searcher, tmp_path: Path):
    def factory(**changes) -> Assistant:
        path = support_config(tmp_path / "cfg", **changes)
        cfg, base = load_support_config(path)
        return Assistant(cfg, base, searcher=searcher)

    return factory
