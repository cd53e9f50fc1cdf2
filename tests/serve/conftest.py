"""Fixtures for the REST service tests: small trained runs (via the real pipeline), API keys, app clients."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serve_helpers import serve_subprocess, wait_ready

DATA_LAYER = Path(__file__).resolve().parents[2] / "src" / "shipyard" / "data" / "prepare.py"


def _write_csv(path: Path, seed: int, n: int = 240) -> Path:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(loc=3.0, scale=2.0, size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(a + (color == "red") - 0.2 * b > -0.4, "yes", "no")
    pd.DataFrame({"a": a, "b": b, "color": color, "label": label}).to_csv(path, index=False)
    return path


def _train(tmp: Path, name: str, *, seed: int, task: str = "classification", hidden: int = 16) -> Path:
    import shipyard

    for _ in range(300):  # the data layer is written by someone else; wait for it (up to 5 minutes)
        if DATA_LAYER.is_file():
            break
        time.sleep(1)
    folder = tmp / name
    folder.mkdir()
    csv = _write_csv(folder / "data.csv", seed)
    target = "label"
    if task == "regression":
        frame = pd.read_csv(csv)
        frame["y"] = frame["a"] * 2 + frame["b"]
        frame = frame.drop(columns=["label"])
        frame.to_csv(csv, index=False)
        target = "y"
    job = shipyard.Job.model_validate(
        {
            "task": task,
            "data": {"source": {"path": str(csv)}, "target": target},
            "model": {"type": "mlp", "hidden": [hidden]},
            "training": {"epochs": 2, "seed": seed},
        }
    )
    return Path(shipyard.run(job, run_dir=folder / "run").run_dir)


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real runs: two classification runs with the same inputs (two versions) and a regression run."""
    tmp = tmp_path_factory.mktemp("serve_runs")
    return {
        "clf": _train(tmp, "clf", seed=1),
        "clf2": _train(tmp, "clf2", seed=2, hidden=8),
        "reg": _train(tmp, "reg", seed=3, task="regression"),
    }


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from shipyard.store.keys import KeyStore

    db = tmp_path_factory.mktemp("serve_keys") / "shipyard.db"
    store = KeyStore(db)
    return {
        "db": db,
        "store": store,
        "predict": store.create("tester", "predict"),
        "admin": store.create("operator", "admin"),
    }


@pytest.fixture
def make_client(runs: dict[str, Path], keys: dict[str, Any]) -> Iterator[Any]:
    """``make_client(models=None, **create_app_kwargs)`` -> a started, ready TestClient."""
    from fastapi.testclient import TestClient

    from shipyard.serve.app import create_app

    with contextlib.ExitStack() as stack:

        def factory(models: dict[str, Path] | None = None, *, ready: bool = True, **kwargs: Any) -> Any:
            kwargs.setdefault("key_store_path", keys["db"])
            app = create_app(models or {"clf": runs["clf"], "reg": runs["reg"]}, **kwargs)
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            if ready:
                wait_ready(client)
            return client

        yield factory


@pytest.fixture(scope="module")
def live_server(runs: dict[str, Path], keys: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`shipyard serve` in a subprocess on 127.0.0.1 (a free port); yields (base_url, process, log file)."""
    log_file = tmp_path_factory.mktemp("serve_live") / "server.log"
    models = [f"clf={runs['clf']}", f"reg={runs['reg']}"]
    with serve_subprocess(models, keys["db"], log_file, rate_limit=0, drain_seconds=5) as (base, proc):
        yield base, proc, log_file
