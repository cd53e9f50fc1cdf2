"""A tiny tabular job (a CSV of 80 rows, two numbers and a category, one epoch of a small MLP) for the tests of
the pipeline, the artifact and inference: seconds to train, every file a run folder holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.schema import Job


def write_rows(path: Path, n: int = 80, seed: int = 0) -> Path:
    """``n`` rows: ``label`` is "yes" when a + b > 0, with a category column ``c``."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    label = np.where(a + b > 0, "yes", "no")
    frame = pd.DataFrame({"a": a, "b": b, "c": rng.choice(["x", "y"], size=n), "label": label})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def tiny_job(rows: Path, **sections: Any) -> Job:
    """The job on the CSV at ``rows``; ``sections`` replace whole sections (e.g. ``evaluation={...}``)."""
    config: dict[str, Any] = {
        "task": "classification",
        "name": "tiny",
        "data": {"source": {"path": str(rows)}, "target": "label", "split": {"validation": 0.2, "test": 0.2}},
        "model": {"type": "mlp", "hidden": [8]},
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 0.01, "seed": 0, "device": "cpu"},
    }
    config.update(sections)
    return Job.model_validate(config)
