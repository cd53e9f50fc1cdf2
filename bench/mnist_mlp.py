"""Benchmark: the MNIST MLP (784-512-256-128-10) trained by shipyard vs scikit-learn's MLPClassifier.

Same layer sizes, same number of epochs, same batch size and learning rate, in one run. Prints test accuracy
and wall time for both and their ratios.

    SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/mnist_mlp.py --epochs 10
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import shipyard
from shipyard.config.schema import Job
from shipyard.examples import mnist_sources
from shipyard.settings import data_dir


def shipyard_job(mnist: Path, epochs: int, batch_size: int, lr: float) -> Job:
    return Job.model_validate(
        {
            "name": "bench-mnist-mlp",
            "task": "classification",
            "data": {
                **mnist_sources(mnist),
                "split": {"method": "stratified", "validation": 0.0, "test": 0.0},
                "cleaning": {"drop_duplicates": False},
            },
            "model": {"type": "mlp", "hidden": [512, 256, 128], "activation": "relu"},
            "training": {"optimizer": "adam", "learning_rate": lr, "batch_size": batch_size, "epochs": epochs},
        }
    )


def run_shipyard(mnist: Path, epochs: int, batch_size: int, lr: float) -> tuple[float, float]:
    job = shipyard_job(mnist, epochs, batch_size, lr)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = shipyard.run(job, run_dir=Path(tmp) / "run")
        seconds = time.perf_counter() - start
    return result.metrics["test"]["accuracy"], seconds


def run_sklearn(mnist: Path, epochs: int, batch_size: int, lr: float) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from shipyard.config.schema import SourceConfig
    from shipyard.data.sources import load_source

    start = time.perf_counter()
    sources = mnist_sources(mnist)
    frames = {
        split: load_source(SourceConfig(**sources[key]), base_dir=Path.cwd())
        for split, key in (("train", "source"), ("test", "test_source"))
    }
    x_train = np.stack(frames["train"]["image"].to_numpy()).reshape(len(frames["train"]), -1) / 255.0
    x_test = np.stack(frames["test"]["image"].to_numpy()).reshape(len(frames["test"]), -1) / 255.0
    y_train = frames["train"]["label"].astype(str).to_numpy()
    y_test = frames["test"]["label"].astype(str).to_numpy()
    clf = MLPClassifier(
        hidden_layer_sizes=(512, 256, 128),
        solver="adam",
        learning_rate_init=lr,
        batch_size=batch_size,
        max_iter=epochs,
        shuffle=True,
        random_state=0,
        early_stopping=False,
        tol=0.0,
        n_iter_no_change=epochs + 1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    accuracy = float((clf.predict(x_test) == y_test).mean())
    return accuracy, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    mnist = data_dir() / "mnist"
    print(f"MNIST MLP 784-512-256-128-10, {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}")
    results = {}
    for name, fn in (("shipyard", run_shipyard), ("sklearn MLPClassifier", run_sklearn)):
        acc, secs = fn(mnist, args.epochs, args.batch_size, args.lr)
        results[name] = (acc, secs)
        print(f"{name:24s} test accuracy {acc:.4f}   wall time {secs:7.1f} s (load + train + evaluate)")
    (a_acc, a_s), (b_acc, b_s) = results["shipyard"], results["sklearn MLPClassifier"]
    print(f"ratio shipyard / sklearn: accuracy {a_acc / b_acc:.4f}x, speed {b_s / a_s:.2f}x faster")


if __name__ == "__main__":
    main()
