"""Out-of-scope rejection: abstain when the top class's probability is below a threshold calibrated on validation.

A classifier always names one of its classes, so an out-of-scope query ("what's the weather?" to a banking bot)
gets a confident-looking in-scope label. With ``evaluation.abstain`` the run picks the lowest max-probability
threshold whose kept validation predictions are still ``target_precision`` accurate (or takes a fixed
``threshold``), stores it in the artifact (``shipyard.json`` -> ``abstain``), and `predict` / `serve` answer the
configured ``label`` with ``abstained: true`` below it. When that label is also a class in the data (an explicit
"other" class), predicting it counts as rejecting too, and the report gives its precision and recall.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.evaluation.report import ReportSection, table_html

log = logging.getLogger(__name__)


def probabilities(outputs: np.ndarray) -> np.ndarray:
    z = np.asarray(outputs, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def calibrate_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float) -> float:
    """The lowest threshold whose kept rows (confidence >= threshold) are at least ``target_precision`` correct."""
    if len(confidence) == 0:
        raise ValueError("no validation rows to calibrate on")
    order = np.argsort(-confidence, kind="stable")
    cumulative = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(cumulative >= target_precision)
    if len(ok) == 0:  # not even the most confident prediction is right often enough: keep only the very top
        log.warning(
            "no threshold reaches precision %.2f on validation; abstaining on nearly everything", target_precision
        )
        return float(confidence[order[0]])
    return float(confidence[order[ok[-1]]])


def abstain_metrics(
    y_true: np.ndarray, outputs: np.ndarray, labels: list[str] | None, threshold: float, label: str
) -> dict[str, Any]:
    """Coverage, accuracy on the kept rows and, when ``label`` is a class, out-of-scope precision / recall."""
    proba = probabilities(outputs)
    confidence, predicted = proba.max(axis=1), proba.argmax(axis=1)
    y = np.asarray(y_true).astype(int)
    kept = confidence >= threshold
    labels = labels or []
    oos = labels.index(label) if label in labels else None
    if oos is not None:
        kept &= predicted != oos  # predicting the explicit out-of-scope class is a rejection as well
    out: dict[str, Any] = {
        "rows": len(y),
        "coverage": float(kept.mean()) if len(y) else 0.0,
        "accuracy_on_kept": float((predicted[kept] == y[kept]).mean()) if kept.any() else None,
        "abstained": int((~kept).sum()),
    }
    if oos is not None:
        actual, rejected = y == oos, ~kept
        hits = int((actual & rejected).sum())
        out["out_of_scope"] = {
            "label": label,
            "rows": int(actual.sum()),
            "precision": hits / int(rejected.sum()) if rejected.any() else None,
            "recall": hits / int(actual.sum()) if actual.any() else None,
        }
    return out


def calibrate(cfg: Any, labels: list[str] | None, validation: tuple[np.ndarray, np.ndarray] | None) -> float:
    """The threshold: ``cfg.threshold`` when given, else calibrated on (y, outputs) of the validation split."""
    if cfg.threshold is not None:
        return float(cfg.threshold)
    if validation is None or len(validation[0]) == 0:
        raise ShipyardError(
            "evaluation.abstain needs a validation split to calibrate its threshold",
            where="evaluation.abstain",
            hint="set data.split.validation above 0, or give evaluation.abstain.threshold",
        )
    y, outputs = validation
    proba = probabilities(outputs)
    predicted = proba.argmax(axis=1)
    oos = (labels or []).index(cfg.label) if cfg.label in (labels or []) else None
    # an out-of-scope row is only "right" when rejected, so it never counts as a correct kept prediction
    correct = (predicted == np.asarray(y).astype(int)) & (predicted != oos if oos is not None else True)
    return calibrate_threshold(proba.max(axis=1), correct, cfg.target_precision)


def report_section(result: dict[str, Any]) -> ReportSection:
    rows = []
    for split in ("validation", "test"):
        m = result.get(split)
        if not m:
            continue
        row = {"split": split, "rows": m["rows"], "coverage": m["coverage"], "accuracy on kept": m["accuracy_on_kept"]}
        if "out_of_scope" in m:
            oos = m["out_of_scope"]
            row.update(
                {"out-of-scope rows": oos["rows"], "oos precision": oos["precision"], "oos recall": oos["recall"]}
            )
        rows.append(row)
    how = "fixed" if result["fixed"] else f"calibrated on validation for precision {result['target_precision']}"
    intro = (
        f"<p>Predictions whose top probability is below <b>{result['threshold']:.4f}</b> ({how})"
        f" are answered <code>{html.escape(result['label'])}</code> with <code>abstained: true</code>.</p>"
    )
    return ReportSection("Out-of-scope rejection", intro + table_html(rows))
