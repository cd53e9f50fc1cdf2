"""Small runs trained once per test session through the real pipeline (sklearn digits: no shared data)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pytest

import shipyard


def _train(root: Path, model: dict[str, Any], epochs: int) -> Path:
    job = shipyard.Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {"format": "sklearn_digits"},
                "split": {"validation": 0.1, "test": 0.2},
                "cleaning": {"drop_duplicates": False},
            },
            "model": model,
            "training": {"epochs": epochs, "batch_size": 32, "learning_rate": 0.003, "seed": 0},
        }
    )
    run_dir = root / f"{model['type']}-run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shipyard.run(job, run_dir=run_dir)
    return run_dir


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logging.getLogger("shipyard").setLevel(logging.WARNING)
    return _train(tmp_path_factory.mktemp("mlp"), {"type": "mlp", "hidden": [48, 24]}, epochs=3)


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = {"type": "cnn", "channels": [8, 16], "convs_per_block": 1, "head_hidden": 32, "dropout": 0.0}
    return _train(tmp_path_factory.mktemp("cnn"), model, epochs=2)
