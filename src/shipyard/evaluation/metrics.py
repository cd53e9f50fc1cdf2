"""Metrics for a trained model's predictions: classification and regression.

Everything returned is plain Python (``float``, ``int``, ``str``, ``list``, ``dict``, ``None``) so that the result
can go straight into ``metrics.json``, the report and the model card. A metric that is undefined for the data at
hand (ROC AUC with a missing class, R² of a single row) is left out or set to ``None`` rather than NaN, because
NaN is not valid JSON.

The maths comes from scikit-learn wherever it has the metric; only the calibration bins, the logit detection and
the residual summary are written here.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ECE_BINS",
    "classification_metrics",
    "compute_metrics",
    "expected_calibration_error",
    "looks_like_probabilities",
    "regression_metrics",
    "reliability_bins",
    "to_probabilities",
]

DEFAULT_ECE_BINS = 15
# Rows of a probability matrix may be off by float32 rounding (softmax in fp16/bf16 even more); anything further
# from 1 than this is taken to be logits.
_PROBA_SUM_TOLERANCE = 1e-3
# log loss is infinite for a zero probability on the true class; clip like scikit-learn's float64 eps does so a
# single overconfident mistake gives a large but finite number.
_LOG_LOSS_EPS = 1e-15


# --------------------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------------------


def _as_class_indices(y_true: Any, n_classes: int, *, where: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ShipyardError(f"expected a 1-D array of class indices, got shape {y.shape}", where=where)
    # float arrays of whole numbers (e.g. read back from JSON) are accepted; fractions are a caller bug
    if (
        y.size
        and not np.issubdtype(y.dtype, np.integer)
        and (not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)))
    ):
        raise ShipyardError("class indices must be whole numbers", where=where)
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ShipyardError(
            f"class index out of range: values span {int(y.min())}..{int(y.max())} but there are {n_classes} classes",
            where=where,
        )
    return y


def _as_matrix(outputs: Any, *, where: str) -> np.ndarray:
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 2:
        raise ShipyardError(f"expected an (N, K) array, got shape {out.shape}", where=where)
    if not np.all(np.isfinite(out)):
        raise ShipyardError("contains NaN or infinite values", where=where)
    return out


def looks_like_probabilities(outputs: np.ndarray) -> bool:
    """True when every row is non-negative and sums to 1 (within float rounding), i.e. already probabilities."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 2 or out.size == 0:
        return False
    if np.any(out < 0) or np.any(out > 1 + _PROBA_SUM_TOLERANCE):
        return False
    return bool(np.all(np.abs(out.sum(axis=1) - 1.0) <= _PROBA_SUM_TOLERANCE))


def _softmax(logits: np.ndarray) -> np.ndarray:
    # subtract the row max so exp never overflows, whatever the logits' scale
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def to_probabilities(outputs: Any, *, where: str = "outputs") -> np.ndarray:
    """Classification outputs -> (N, K) probabilities.

    Models return logits, but callers may already hold probabilities (an ONNX model with a softmax head, a
    sklearn baseline); both are accepted. Rows that are non-negative and sum to 1 are taken as probabilities and
    only renormalised; anything else goes through a softmax. A single column ((N,) or (N, 1)) is read as the
    positive class of a binary problem: a probability when it lies in [0, 1], else a logit (sigmoid).
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        col = out.reshape(-1)
        if not np.all(np.isfinite(col)):
            raise ShipyardError("contains NaN or infinite values", where=where)
        p1 = col if col.size and col.min() >= 0 and col.max() <= 1 else 1.0 / (1.0 + np.exp(-col))
        return np.stack([1.0 - p1, p1], axis=1)
    out = _as_matrix(out, where=where)
    if looks_like_probabilities(out):
        # renormalise the rounding error away so log loss and ECE see exact distributions
        return np.clip(out, 0.0, None) / out.sum(axis=1, keepdims=True)
    log.debug("outputs of shape %s are not probabilities; applying softmax", out.shape)
    return _softmax(out)


def _check_labels(labels: list[str] | None, n_classes: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(n_classes)]
    labels = [str(label) for label in labels]
    if len(labels) != n_classes:
        raise ShipyardError(f"{len(labels)} labels given but the outputs have {n_classes} columns", where="labels")
    return labels


def _f(value: Any) -> float | None:
    """numpy scalar -> float, with NaN/inf mapped to None (not representable in JSON)."""
    v = float(value)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------------------------


def reliability_bins(y_true: Any, proba: Any, n_bins: int = DEFAULT_ECE_BINS) -> list[dict[str, Any]]:
    """Top-label calibration bins: ``n_bins`` equal-width confidence intervals over [0, 1].

    Each bin gives ``lower``, ``upper``, ``count``, ``confidence`` (mean top probability) and ``accuracy``
    (fraction whose top-probability class is the true one); the last two are ``None`` for an empty bin. The
    first bin is closed on the left and every bin on the right, so a confidence of exactly 1 lands in the last
    bin and each value lands in exactly one.
    """
    if n_bins < 1:
        raise ShipyardError(f"n_bins must be at least 1, got {n_bins}", where="reliability_bins")
    p = _as_matrix(proba, where="proba")
    y = _as_class_indices(y_true, p.shape[1])
    if len(y) != len(p):
        raise ShipyardError(f"{len(y)} targets but {len(p)} prediction rows", where="proba")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins: searchsorted(side="left") maps c in (e[i], e[i+1]] to i+1; clip puts 0 into bin 0
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins: list[dict[str, Any]] = []
    for i in range(n_bins):
        mask = index == i
        count = int(mask.sum())
        bins.append(
            {
                "lower": float(edges[i]),
                "upper": float(edges[i + 1]),
                "count": count,
                "confidence": float(confidence[mask].mean()) if count else None,
                "accuracy": float(correct[mask].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(y_true: Any, proba: Any, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Top-label ECE: the count-weighted mean gap between accuracy and confidence over the reliability bins."""
    bins = reliability_bins(y_true, proba, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total)


def classification_metrics(y_true: Any, proba: Any, labels: list[str] | None) -> dict[str, Any]:
    """The full classification metric set for (N,) class indices and (N, K) probabilities.

    Keys: ``n``, ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``, ``precision_weighted``,
    ``recall_weighted``, ``f1_weighted``, ``per_class`` ({label: {precision, recall, f1, support}}),
    ``confusion_matrix`` (rows = true class, columns = predicted, in label order), ``labels``, ``log_loss``,
    ``ece`` (15-bin top-label expected calibration error) and ``roc_auc`` (binary: positive = class 1;
    multiclass: macro one-vs-rest, only when every class occurs in ``y_true``, else the key is absent).
    """
    p = _as_matrix(proba, where="proba")
    n_classes = p.shape[1]
    if n_classes < 1:
        raise ShipyardError("probabilities have no columns", where="proba")
    labels = _check_labels(labels, n_classes)
    y = _as_class_indices(y_true, n_classes)
    if len(y) != len(p):
        raise ShipyardError(f"{len(y)} targets but {len(p)} prediction rows", where="proba")
    if len(y) == 0:
        raise ShipyardError("cannot compute metrics on zero rows", where="y_true")

    class_ids = list(range(n_classes))
    pred = p.argmax(axis=1)
    # zero_division=0: a class never predicted (or absent) scores 0 rather than raising a warning per class
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred, labels=class_ids, zero_division=0)
    result: dict[str, Any] = {"n": len(y), "accuracy": float(skm.accuracy_score(y, pred))}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = skm.precision_recall_fscore_support(y, pred, labels=class_ids, average=avg, zero_division=0)
        result[f"precision_{avg}"] = float(ap)
        result[f"recall_{avg}"] = float(ar)
        result[f"f1_{avg}"] = float(af)
    result["per_class"] = {
        label: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    result["confusion_matrix"] = skm.confusion_matrix(y, pred, labels=class_ids).astype(int).tolist()
    result["labels"] = labels

    # log loss over all K labels, so a class missing from this split still counts in the normaliser
    if n_classes >= 2:
        clipped = np.clip(p, _LOG_LOSS_EPS, 1.0)
        clipped /= clipped.sum(axis=1, keepdims=True)
        result["log_loss"] = _f(skm.log_loss(y, clipped, labels=class_ids))
    else:
        result["log_loss"] = 0.0

    present = np.unique(y)
    if n_classes == 2:
        if len(present) == 2:
            result["roc_auc"] = _f(skm.roc_auc_score(y, p[:, 1]))
        else:
            log.info("roc_auc left out: only one class present in y_true")
    elif n_classes > 2:
        if len(present) == n_classes:
            # sklearn's OvR path requires rows summing to 1 exactly; renormalise against float drift
            result["roc_auc"] = _f(
                skm.roc_auc_score(
                    y,
                    p / p.sum(axis=1, keepdims=True),
                    multi_class="ovr",
                    average="macro",
                    labels=class_ids,
                )
            )
        else:
            log.info("roc_auc left out: %d of %d classes absent from y_true", n_classes - len(present), n_classes)

    result["ece"] = expected_calibration_error(y, p, DEFAULT_ECE_BINS)
    return result


# --------------------------------------------------------------------------------------------------------------
# regression
# --------------------------------------------------------------------------------------------------------------

_RESIDUAL_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _as_vector(values: Any, *, where: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise ShipyardError(f"expected shape (N,) or (N, 1), got {v.shape}", where=where)
    if not np.all(np.isfinite(v)):
        raise ShipyardError("contains NaN or infinite values", where=where)
    return v


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """mse, rmse, mae, r2 (``None`` below two rows), ``n`` and ``residuals`` (residual = true - predicted):
    mean, std, min, max and the 5/25/50/75/95 % quantiles as ``q05`` ... ``q95``."""
    y = _as_vector(y_true, where="y_true")
    p = _as_vector(y_pred, where="y_pred")
    if len(y) != len(p):
        raise ShipyardError(f"{len(y)} targets but {len(p)} predictions", where="y_pred")
    if len(y) == 0:
        raise ShipyardError("cannot compute metrics on zero rows", where="y_true")
    mse = float(skm.mean_squared_error(y, p))
    residuals = y - p
    qs = np.quantile(residuals, _RESIDUAL_QUANTILES)
    return {
        "n": len(y),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(skm.mean_absolute_error(y, p)),
        # R² is undefined for one row; sklearn would warn and return NaN
        "r2": _f(skm.r2_score(y, p)) if len(y) >= 2 else None,
        "residuals": {
            "mean": float(residuals.mean()),
            "std": float(residuals.std()),
            "min": float(residuals.min()),
            "max": float(residuals.max()),
            **{f"q{round(q * 100):02d}": float(v) for q, v in zip(_RESIDUAL_QUANTILES, qs, strict=True)},
        },
    }


# --------------------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------------------


def compute_metrics(task: str, y_true: Any, outputs: Any, labels: list[str] | None = None) -> dict[str, Any]:
    """Metrics for one split, from the model's raw outputs.

    ``task`` is ``"classification"`` (outputs: logits or probabilities, (N, K)) or ``"regression"`` (outputs:
    values, (N,) or (N, 1)). ``labels`` names the classes in column order; ``None`` uses the column indices.
    """
    kind = str(task).lower()
    if kind == "classification":
        return classification_metrics(y_true, to_probabilities(outputs), labels)
    if kind == "regression":
        return regression_metrics(y_true, outputs)
    raise ShipyardError(f"unknown task {task!r}", where="task", hint="expected 'classification' or 'regression'")
