"""The metrics an `Engine` computes when it is handed no ``metrics_fn``.

Training and evaluation are independent layers, so the engine does not import the evaluation layer's
`compute_metrics`: the pipeline hands it over (``Engine(..., metrics_fn=compute_metrics)``). An engine built
directly (a test, a script) falls back on these few, enough for early stopping and soups on their names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MetricsFn", "basic_metrics"]

# ``metrics_fn(task, target, outputs, labels)``: the pipeline passes `shipyard.evaluation.metrics.compute_metrics`
# (training and evaluation are independent layers, so the engine is handed it rather than importing it)
MetricsFn = Callable[[str, np.ndarray, np.ndarray, "list[str] | None"], dict[str, Any]]


def basic_metrics(
    task: str, target: np.ndarray, outputs: np.ndarray, labels: list[str] | None = None
) -> dict[str, Any]:
    """The engine's own metrics when it is given no ``metrics_fn``: accuracy, or the errors and R².

    Enough for early stopping and soups on these names (``loss`` is added by `Engine.evaluate`); the full set
    (F1, ROC AUC, calibration, ...) comes from the evaluation layer's function that the pipeline passes.
    """
    target = np.asarray(target)
    if task == "classification":
        n = len(target)
        correct = int((np.asarray(outputs).argmax(axis=1) == target.astype(np.int64)).sum()) if n else 0
        return {"n": n, "accuracy": correct / n if n else None}
    y = target.astype(np.float64).reshape(-1)
    errors = np.asarray(outputs, dtype=np.float64).reshape(-1) - y
    if not len(errors):
        return {"n": 0, "mse": None, "rmse": None, "mae": None, "r2": None}
    mse = float(np.mean(errors**2))
    spread = float(np.sum((y - y.mean()) ** 2))
    return {
        "n": len(errors),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / spread if spread > 0 else None,  # undefined for a constant target
    }
