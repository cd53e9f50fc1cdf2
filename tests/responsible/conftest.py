"""Fixtures for the responsible-AI tests: small synthetic CSVs and a few short runs shared by the whole module."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from rai_support import job_dict, make_csv

import shipyard
from shipyard.config.schema import Job


@pytest.fixture(scope="session")
def synth_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_csv(tmp_path_factory.mktemp("rai_data") / "synth.csv")


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rai_runs")


def _run(raw: dict[str, Any], run_dir: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shipyard.run(Job.model_validate(raw), run_dir=run_dir)


@pytest.fixture(scope="session")
def plain_run(synth_csv: Path, runs_root: Path) -> Any:
    return _run(job_dict(synth_csv), runs_root / "plain")


@pytest.fixture(scope="session")
def dp_run(synth_csv: Path, runs_root: Path) -> Any:
    raw = job_dict(
        synth_csv, privacy={"differential_privacy": {"target_epsilon": 3.0, "target_delta": 1e-5, "accountant": "prv"}}
    )
    return _run(raw, runs_root / "dp")
