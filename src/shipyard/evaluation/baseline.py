"""``baseline_check``: say loudly when a classifier ends where always predicting the majority class would.

A model that scores exactly the majority share (a free-text column typed categorical, a learning rate that never
moves, a feature set with no signal) otherwise looks like a plausible result: accuracy 0.666 on a 2:1 data set.
The check reads only the split metrics (the confusion matrix holds the class counts), so it costs nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# below this many rows a split says too little to call anything "at the baseline"
MIN_ROWS = 20
# accuracy within max(one binomial standard error, this) of the majority share counts as "at the baseline"
MIN_MARGIN = 0.005
# ROC AUC within this many standard errors (under "no signal") of 0.5 counts as chance ranking
AUC_STANDARD_ERRORS = 2.0


def split_warning(split: str, values: Mapping[str, Any]) -> str | None:
    """One warning for one split's classification metrics, or None when the model beats the majority class."""
    matrix = np.asarray(values.get("confusion_matrix") or [], dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or "accuracy" not in values:
        return None
    n = int(matrix.sum())
    if n < MIN_ROWS:
        return None
    true_counts, predicted_counts = matrix.sum(axis=1), matrix.sum(axis=0)
    majority = float(true_counts.max()) / n
    accuracy = float(values["accuracy"])
    if accuracy > majority + max(math.sqrt(majority * (1 - majority) / n), MIN_MARGIN):
        return None
    auc = values.get("roc_auc")
    if auc is not None:
        smallest = int(true_counts[true_counts > 0].min())
        rest = n - smallest
        # Hanley & McNeil's standard error of the AUC when there is no signal (AUC = 0.5)
        auc_se = math.sqrt((n + 1) / (12.0 * smallest * rest)) if smallest and rest else 0.0
        if abs(float(auc) - 0.5) > AUC_STANDARD_ERRORS * auc_se:
            return None  # the ranking carries signal: accuracy is only capped by class imbalance
    labels = list(values.get("labels") or range(matrix.shape[0]))
    top = int(predicted_counts.argmax())
    parts = [
        f"{split}: the model does no better than always predicting the majority class: "
        f"accuracy {accuracy:.3f} vs majority share {majority:.3f} (n={n})"
    ]
    if auc is not None:
        parts.append(f"ROC AUC {float(auc):.3f}")
    parts.append(f"it predicts {labels[top]!r} for {predicted_counts[top] / n:.0%} of rows")
    return (
        "; ".join(parts) + ". Check the feature types (free text typed categorical?), the learning rate and the epochs"
    )


def baseline_check(task: str, metrics: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{"warnings": [...]}`` for the validation / test splits that end at the majority-class baseline (logged at
    WARNING), or ``{}``: merge it into the run's metrics."""
    if str(task).lower() != "classification":
        return {}
    warnings = [
        w
        for split in ("validation", "test")
        if isinstance(metrics.get(split), Mapping) and (w := split_warning(split, metrics[split]))
    ]
    for warning in warnings:
        log.warning("%s", warning)
    return {"warnings": warnings} if warnings else {}
