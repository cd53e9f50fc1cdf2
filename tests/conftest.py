"""Shared fixtures: the shared data folder (tests that need it skip with a reason when it is absent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shipyard.settings import find_data_dir

if TYPE_CHECKING:
    import pandas as pd


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


# ------------------------------------------------------------------ continuous learning (tests/loop, the dashboard)
def read_adult(data_dir: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(data_dir / "adult" / "adult.data", skipinitialspace=True, na_values=["?"])


def train_adult(frame, folder: Path, *, epochs: int = 3, name: str = "adult", learning_rate: float = 0.003) -> Path:
    """Train a small MLP on ``frame`` (Adult columns) in ``folder``; returns the run folder."""
    import shipyard
    from shipyard.config.schema import Job

    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "train.csv", index=False)
    job = Job(
        name=name,
        task="classification",
        data={
            "source": {"path": str(folder / "train.csv"), "format": "csv"},
            "target": "Y",
            "drop_columns": ["fnlwgt"],
            "split": {"method": "stratified", "validation": 0.15, "test": 0.15},
        },
        model={"type": "mlp", "hidden": [32]},
        training={"epochs": epochs, "batch_size": 128, "seed": 0, "learning_rate": learning_rate},
        output={"runs_root": str(folder / "runs"), "name": name},
    )
    return shipyard.run(job).run_dir


@pytest.fixture(scope="session")
def adult_young_run(tmp_path_factory, data_dir: Path) -> Path:
    """A model trained on 3,000 Adult rows of people under 40: the biased slice of the drift benchmark."""
    frame = read_adult(data_dir)
    young = frame[frame["age"] < 40].sample(n=3000, random_state=0)
    return train_adult(young, tmp_path_factory.mktemp("adult-young"))


@pytest.fixture
def adult_frame(data_dir: Path) -> pd.DataFrame:
    return read_adult(data_dir)


@pytest.fixture(scope="session")
def adult_trainer():
    """``train_adult(frame, folder, *, epochs, name, learning_rate) -> run folder``, for a second model."""
    return train_adult
