from __future__ import annotations

from pathlib import Path

import pytest
from retrieval_helpers import bitext_slice, tiny_run


@pytest.fixture(scope="session")
def bitext_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bitext_slice(tmp_path_factory.mktemp("bitext"))


@pytest.fixture(scope="session")
def retrieval_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("retrieval_run"))
