"""The built-in demo job: the MNIST CNN when the shared data is present, else scikit-learn's 8x8 digits.

The same jobs live as YAML in the repository's examples/ folder; these copies let an installed package run the
demo from anywhere.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.config.schema import Job
from shipyard.settings import find_data_dir

_MODEL = {"type": "cnn", "channels": [32, 64], "batch_norm": True, "head_hidden": 128}


def mnist_sources(mnist: Path) -> dict[str, dict[str, str]]:
    """The `source` / `test_source` entries for the MNIST IDX files in ``mnist``."""
    return {
        key: {
            "format": "idx",
            "images": str(mnist / f"{prefix}-images-idx3-ubyte.gz"),
            "labels": str(mnist / f"{prefix}-labels-idx1-ubyte.gz"),
        }
        for key, prefix in (("source", "train"), ("test_source", "t10k"))
    }


def mnist_cnn_job(data_dir: Path) -> Job:
    return Job.model_validate(
        {
            "name": "demo-mnist-cnn",
            "task": "classification",
            "data": {
                **mnist_sources(data_dir / "mnist"),
                "split": {"method": "stratified", "validation": 0.05, "test": 0.0},
                "cleaning": {"drop_duplicates": False},
                "augmentation": {"shift": 0.08, "rotation": 8, "scale": 0.08},
            },
            "model": {**_MODEL, "convs_per_block": 1, "dropout": 0.1, "head_dropout": 0.3},
            "training": {
                "learning_rate": 0.002,
                "weight_decay": 0.0001,
                "schedule": {"name": "cosine", "warmup_steps": 100},
                "batch_size": 128,
                "epochs": 4,
            },
        }
    )


def digits_cnn_job() -> Job:
    return Job.model_validate(
        {
            "name": "demo-digits-cnn",
            "task": "classification",
            "data": {
                "source": {"format": "sklearn_digits"},
                "split": {"method": "stratified", "validation": 0.1, "test": 0.2},
                "cleaning": {"drop_duplicates": False},
                "augmentation": {"shift": 0.1, "rotation": 8},
            },
            "model": {**_MODEL, "convs_per_block": 2, "dropout": 0.1},
            "training": {
                "learning_rate": 0.003,
                "schedule": {"name": "cosine", "warmup_steps": 20},
                "batch_size": 32,
                "epochs": 30,
                "early_stopping": {"metric": "accuracy", "patience": 8},
            },
        }
    )


def demo_job() -> tuple[Job, Path, str]:
    data_dir = find_data_dir()
    if data_dir is not None and (data_dir / "mnist").is_dir():
        return mnist_cnn_job(data_dir), Path.cwd(), f"MNIST CNN on {data_dir / 'mnist'}"
    return digits_cnn_job(), Path.cwd(), "8x8 digits CNN (shared data not found; set SHIPYARD_DATA_DIR for MNIST)"
