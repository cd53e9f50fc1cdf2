"""The report's text section: how long the texts are and which mistakes the model is most sure of.

Per-class metrics and the confusion matrix (readable up to 100 classes) are already in the main report; this
adds the token-length distribution per split and the 20 most confident mistakes on the test split with their
texts, which is where a reader learns what the model gets wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.evaluation.metrics import to_probabilities
from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html

TOP_MISTAKES = 20


def text_column(prepared: Any) -> str | None:
    texts = [name for name, kind in prepared.column_types.items() if kind == "text"]
    return texts[0] if texts else None


def confident_mistakes(
    texts: list[str], y_true: np.ndarray, proba: np.ndarray, labels: list[str], k: int = TOP_MISTAKES
) -> list[dict[str, Any]]:
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    order = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:k]
    return [
        {
            "text": texts[i],
            "true": labels[int(y_true[i])],
            "predicted": labels[int(pred[i])],
            "confidence": float(proba[i, pred[i]]),
        }
        for i in order
    ]


def report_sections(*, job: Any, run_dir: Any, metrics: dict[str, Any], prepared: Any, predictions: Any) -> list[Any]:
    column = text_column(prepared)
    if column is None:
        return []
    parts = []
    fig = new_figure(7, 3)
    ax = fig.add_subplot(1, 1, 1)
    for name, split in prepared.splits.items():
        mask = split.inputs.get("attention_mask")
        if mask is not None and len(mask):
            ax.hist(mask.sum(axis=1), bins=40, alpha=0.5, label=f"{name} (n={len(mask)})")
    ax.set_xlabel("tokens per example (after truncation)")
    ax.set_ylabel("examples")
    ax.legend()
    parts.append("<h3>Length distribution</h3>" + figure_to_img_tag(fig, alt="token length histogram"))
    stats = prepared.summary.get("text_lengths")
    if stats:
        parts.append(table_html([{"split": k, **v} for k, v in stats.items()]))
    test = prepared.splits["test"]
    if job.task == "classification" and "test" in predictions and len(test.target) and prepared.labels:
        proba = to_probabilities(np.asarray(predictions["test"]))
        texts = [str(t) for t in test.frame[column].tolist()]
        rows = confident_mistakes(texts, np.asarray(test.target), proba, prepared.labels)
        for row in rows:
            row["confidence"] = f"{row['confidence']:.3f}"
            row["text"] = row["text"][:300]
        parts.append(f"<h3>The {len(rows)} most confident mistakes (test split)</h3>")
        parts.append(table_html(rows, columns=["confidence", "true", "predicted", "text"]) if rows else "<p>none</p>")
    return [ReportSection("Text", "\n".join(parts))]
