"""Runs the worked examples in examples/ and prints each one's test figure against its target.

SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/examples.py [name ...]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

import shipyard
from shipyard.artifact import Artifact
from shipyard.config import load_job

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TARGETS = {
    "linear_regression": ("prediction at x=5", 5.0, "±0.05"),
    "mnist_mlp": ("accuracy", 0.98, ">="),
    "mnist_cnn": ("accuracy", 0.99, ">="),
    "digits_cnn": ("accuracy", 0.98, ">="),
    "california_housing": ("r2", 0.80, ">="),
    "adult_income": ("accuracy", 0.85, ">="),
    "adult_lightgbm": ("accuracy", 0.87, ">="),
    "adult_auto": ("accuracy", 0.875, ">="),
    "chnsenticorp_scratch": ("accuracy", 0.87, ">="),
}


def run(name: str, root: Path) -> str:
    job = load_job(EXAMPLES / f"{name}.yaml")
    start = time.perf_counter()
    result = shipyard.run(job, run_dir=root / name)
    seconds = time.perf_counter() - start
    metric, target, rule = TARGETS[name]
    if name == "linear_regression":
        value = float(Artifact.load(result.run_dir).predict_frame(pd.DataFrame({"x": [5.0]}))["value"][0])
        ok = abs(value - target) <= 0.05
    else:
        value = result.metrics["test"][metric]
        ok = value >= target
    epochs = result.metrics["training"]["epochs"]
    return (
        f"| {name} | {metric} | {value:.4f} | {rule} {target} | {'yes' if ok else 'NO'} | {epochs} | {seconds:.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(TARGETS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| example | metric | test value | target | met | epochs | wall time |")
    print("|---|---|---:|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            print(run(name, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
