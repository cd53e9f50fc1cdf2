"""Helpers shared by the responsible-AI tests (a unique module name: conftest.py names clash across folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def make_csv(path: Path, n: int = 1500, seed: int = 0) -> Path:
    """Six numeric features (x1, x2 matter), one categorical, a sensitive `group`, an id and a free-text note."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    group = rng.choice(["a", "b"], size=n, p=[0.6, 0.4])
    c = rng.choice(["u", "v", "w"], size=n)
    logit = 2.5 * x[:, 0] - 2.0 * x[:, 1] + 1.0 * (group == "a") + 0.5 * (c == "u")
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    notes = np.where(rng.random(n) < 0.1, "mail me at jane.doe@example.com", "no contact")
    frame = pd.DataFrame({f"x{i + 1}": x[:, i] for i in range(6)})
    frame["c"], frame["group"], frame["user_id"], frame["note"], frame["label"] = c, group, np.arange(n), notes, y
    frame.to_csv(path, index=False)
    return path


def job_dict(csv: Path, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "task": "classification",
        "data": {
            "source": {"path": str(csv)},
            "target": "label",
            "drop_columns": ["user_id", "note", "group"],
            "split": {"method": "stratified", "validation": 0.15, "test": 0.25},
            "pii": {"action": "redact", "columns": ["note"]},
        },
        "model": {"type": "mlp", "hidden": [32]},
        "training": {"epochs": 6, "batch_size": 64, "learning_rate": 0.01, "seed": 0, "num_threads": 1},
        "evaluation": {"sensitive_features": ["group"]},
    }
    for key, value in over.items():
        raw[key] = value
    return raw
