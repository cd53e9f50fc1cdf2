"""Fixtures for the loop tests: a loop store in a temporary runs folder and a model folder's shipyard.json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shipyard.loop.store import LoopStore


@pytest.fixture
def store(tmp_path: Path) -> LoopStore:
    return LoopStore.open(tmp_path / "runs")


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


def read_adult(data_dir: Path) -> pd.DataFrame:
    return pd.read_csv(data_dir / "adult" / "adult.data", skipinitialspace=True, na_values=["?"])


def train_adult(frame, folder: Path, *, epochs: int = 3, name: str = "adult") -> Path:
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
        training={"epochs": epochs, "batch_size": 128, "seed": 0, "learning_rate": 0.003},
        output={"runs_root": str(folder / "runs"), "name": name},
    )
    return shipyard.run(job).run_dir


@pytest.fixture(scope="module")
def adult_young_run(tmp_path_factory, data_dir: Path) -> Path:
    """A model trained on 3,000 Adult rows of people under 40: the biased slice of the drift benchmark."""
    frame = read_adult(data_dir)
    young = frame[frame["age"] < 40].sample(n=3000, random_state=0)
    return train_adult(young, tmp_path_factory.mktemp("adult-young"))


@pytest.fixture
def adult_frame(data_dir: Path):
    return read_adult(data_dir)
