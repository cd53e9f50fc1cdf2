"""Fixtures for the loop tests: a loop store in a temporary runs folder and a model folder's shipyard.json."""

from __future__ import annotations

import json
from pathlib import Path

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
