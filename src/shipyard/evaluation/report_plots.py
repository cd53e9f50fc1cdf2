"""The report's standard plots: learning curves, confusion matrix (or the top confusions), reliability diagram,
regression residuals. Each returns (title, trusted HTML) pairs for report.py to place on the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from shipyard.errors import ShipyardError
from shipyard.evaluation._common import format_value as _format_value
from shipyard.evaluation._common import is_number as _is_number
from shipyard.evaluation.metrics import DEFAULT_ECE_BINS, reliability_bins, to_probabilities
from shipyard.evaluation.report_blocks import figure_to_img_tag, mpl_text, new_figure, table_html

# Scatter plots of a million test rows make a multi-megabyte PNG and show nothing more than 5000 points do.
_MAX_SCATTER_POINTS = 5000
# Above this many classes the per-cell counts of the confusion matrix overlap and become noise.
_ANNOTATE_MAX_CLASSES = 20
# Past this many classes a matrix image has unreadable labels (151 classes made a 2710x2455 image): the report lists
# the most frequent confusions instead.
_MATRIX_MAX_CLASSES = 30
_TOP_CONFUSIONS = 30


def learning_curves(train_log: Sequence[Mapping[str, Any]]) -> str:
    """One panel per numeric key of the step events (x = step) and of the epoch events (x = epoch); losses of the
    epoch events share a panel so train and validation loss can be compared directly."""
    parts: list[str] = []
    for event, x_key in (("step", "step"), ("epoch", "epoch")):
        entries = [e for e in train_log if isinstance(e, Mapping) and e.get("event") == event]
        series: dict[str, tuple[list[float], list[float]]] = {}
        for entry in entries:
            x = entry.get(x_key)
            if not _is_number(x):
                continue
            for key, value in entry.items():
                if key in ("event", "epoch", "step") or not _is_number(value) or not math.isfinite(value):
                    continue
                xs, ys = series.setdefault(str(key), ([], []))
                xs.append(float(x))
                ys.append(float(value))
        if not series:
            continue
        panels: list[tuple[str, list[str]]] = []
        losses = [k for k in series if k.endswith("loss")]
        if event == "epoch" and losses:
            panels.append(("loss", losses))
        panels.extend((k, [k]) for k in series if not (event == "epoch" and k in losses))
        ncols = min(3, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = new_figure(4.2 * ncols, 3.0 * nrows)
        for i, (title, keys) in enumerate(panels):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            for key in keys:
                xs, ys = series[key]
                ax.plot(xs, ys, marker="o" if len(xs) <= 50 else None, markersize=3, label=mpl_text(key))
            ax.set_title(mpl_text(title, 40))
            ax.set_xlabel(x_key)
            ax.grid(alpha=0.3)
            if keys == ["lr"]:
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            if len(keys) > 1:
                ax.legend(fontsize=8)
        fig.tight_layout()
        heading = "Per step" if event == "step" else "Per epoch"
        parts.append(f"<h3>{heading}</h3>" + figure_to_img_tag(fig, alt=f"learning curves per {event}"))
        if event == "epoch":
            parts.append(table_html([{k: v for k, v in e.items() if k != "event"} for e in entries]))
    if not parts:
        return '<p class="note">No training log entries with numeric values.</p>'
    return "".join(parts)


def _top_confusions_html(cm: np.ndarray, labels: list[str]) -> str:
    """The most frequent (true, predicted) mistakes, with their share of the true class, as a table."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    row_sums = cm.sum(axis=1)
    order = np.argsort(off, axis=None, kind="stable")[::-1][:_TOP_CONFUSIONS]
    rows = []
    for flat in order:
        i, j = np.unravel_index(int(flat), off.shape)
        if off[i, j] == 0:
            break
        rows.append(
            {
                "true": labels[i],
                "predicted": labels[j],
                "count": int(off[i, j]),
                "share of true class": round(float(off[i, j]) / max(int(row_sums[i]), 1), 3),
            }
        )
    correct = int(np.trace(cm))
    note = (
        f'<p class="note">{len(labels)} classes are too many for a readable matrix; the {len(rows)} most frequent '
        f"confusions are listed ({correct} of {int(cm.sum())} test rows correct; per-class figures below).</p>"
    )
    return note + (table_html(rows) if rows else '<p class="note">No confusions on the test split.</p>')


def _confusion_matrix_figure(cm: np.ndarray, labels: list[str]) -> Figure:
    k = len(labels)
    # scale the canvas with the class count so cells stay legible up to ~100 classes, within a sane page width
    side = min(max(4.5, 0.22 * k + 3.0), 26.0)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    # colour by row-normalised share (recall) so rare classes are as visible as common ones; counts annotate
    row_sums = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, row_sums, out=np.zeros_like(cm, dtype=float), where=row_sums > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    # tick labels sized to the cell height (in points, roughly 80 % of the figure is axes) so they never overlap
    cell_pt = side * 72 * 0.8 / max(k, 1)
    tick_size = min(9.0, max(4.0, cell_pt * 0.5))
    ticks = np.arange(k)
    names = [mpl_text(label) for label in labels]
    ax.set_xticks(ticks, names, rotation=90 if k > 8 else 45, ha="center" if k > 8 else "right", fontsize=tick_size)
    ax.set_yticks(ticks, names, fontsize=tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= _ANNOTATE_MAX_CLASSES:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(cm[i, j])),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black",
                    )
    fig.tight_layout()
    return fig


def _reliability_figure(bins: list[dict[str, Any]]) -> Figure:
    fig = new_figure(5.5, 6.0)
    ax = fig.add_subplot(2, 1, 1)
    ax_hist = fig.add_subplot(2, 1, 2, sharex=ax)
    width = bins[0]["upper"] - bins[0]["lower"]
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
    filled = [(c, b) for c, b in zip(centres, bins, strict=True) if b["count"]]
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.bar(
        [c for c, _ in filled],
        [b["accuracy"] for _, b in filled],
        width=width * 0.9,
        edgecolor="black",
        alpha=0.75,
        label="accuracy",
    )
    ax.plot(
        [b["confidence"] for _, b in filled],
        [b["accuracy"] for _, b in filled],
        "o",
        color="crimson",
        markersize=4,
        label="mean confidence",
    )
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("reliability (top label)")
    ax_hist.bar(centres, [b["count"] for b in bins], width=width * 0.9, color="slategray")
    ax_hist.set_xlabel("confidence")
    ax_hist.set_ylabel("count")
    fig.tight_layout()
    return fig


def _subsample(n: int) -> np.ndarray:
    if n <= _MAX_SCATTER_POINTS:
        return np.arange(n)
    # fixed seed: the same run always renders the same plot
    return np.sort(np.random.default_rng(0).choice(n, _MAX_SCATTER_POINTS, replace=False))


def classification_sections(test_metrics: Mapping[str, Any], predictions: Mapping[str, Any]) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    y_true = predictions.get("y_true")
    outputs = predictions.get("outputs")
    labels = predictions.get("labels") or test_metrics.get("labels")
    proba: np.ndarray | None = None
    y: np.ndarray | None = None
    if y_true is not None and outputs is not None:
        proba = to_probabilities(outputs, where="test_predictions.outputs")
        y = np.asarray(y_true).reshape(-1).astype(np.int64)
        if len(y) != len(proba):
            raise ShipyardError(f"{len(y)} targets but {len(proba)} prediction rows", where="test_predictions")
    if labels is None:
        k = proba.shape[1] if proba is not None else len(test_metrics.get("confusion_matrix") or [])
        labels = [str(i) for i in range(k)]
    labels = [str(label) for label in labels]

    cm: np.ndarray | None = None
    if proba is not None and y is not None:
        k = proba.shape[1]
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (y, proba.argmax(axis=1)), 1)
    elif test_metrics.get("confusion_matrix"):
        cm = np.asarray(test_metrics["confusion_matrix"], dtype=np.int64)
    if cm is not None and cm.size and len(labels) == cm.shape[0]:
        if len(labels) > _MATRIX_MAX_CLASSES:
            sections.append(("Top confusions (test)", _top_confusions_html(cm, labels)))
        else:
            note = (
                f'<p class="note">{len(labels)} classes: per-cell counts are hidden; colour shows the share of '
                "each true class.</p>"
                if len(labels) > _ANNOTATE_MAX_CLASSES
                else '<p class="note">Cells show counts; colour shows the share of each true class (recall).</p>'
            )
            img = figure_to_img_tag(_confusion_matrix_figure(cm, labels), alt="confusion matrix")
            sections.append(("Confusion matrix", note + f'<div class="scroll">{img}</div>'))

    per_class = test_metrics.get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        rows = [{"class": name, **dict(values)} for name, values in per_class.items()]
        sections.append(("Per-class metrics (test)", table_html(rows)))

    if proba is not None and y is not None:
        bins = reliability_bins(y, proba, DEFAULT_ECE_BINS)
        ece = test_metrics.get("ece")
        text = (
            f'<p class="note">Expected calibration error ({DEFAULT_ECE_BINS} bins): {_format_value(ece)}</p>'
            if ece is not None
            else ""
        )
        sections.append(("Calibration", text + figure_to_img_tag(_reliability_figure(bins), alt="reliability diagram")))
    return sections


def regression_sections(predictions: Mapping[str, Any]) -> list[tuple[str, str]]:
    y_true = predictions.get("y_true")
    outputs = predictions.get("outputs")
    if y_true is None or outputs is None:
        return []
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(outputs, dtype=np.float64).reshape(-1)
    if len(y) != len(pred):
        raise ShipyardError(f"{len(y)} targets but {len(pred)} predictions", where="test_predictions")
    idx = _subsample(len(y))
    y, pred = y[idx], pred[idx]
    residual = y - pred
    fig = new_figure(11.0, 4.5)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.scatter(pred, y, s=8, alpha=0.5)
    if len(y):
        lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
        ax1.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="y = x")
        ax1.legend(fontsize=8)
    ax1.set_xlabel("predicted")
    ax1.set_ylabel("true")
    ax1.set_title("predicted vs true")
    ax1.grid(alpha=0.3)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.scatter(pred, residual, s=8, alpha=0.5)
    ax2.axhline(0.0, linestyle="--", color="grey")
    ax2.set_xlabel("predicted")
    ax2.set_ylabel("residual (true - predicted)")
    ax2.set_title("residuals")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    note = (
        f'<p class="note">Showing a random sample of {_MAX_SCATTER_POINTS} of the test rows.</p>'
        if len(idx) < len(np.asarray(y_true).reshape(-1))
        else ""
    )
    return [("Predictions and residuals", note + figure_to_img_tag(fig, alt="regression diagnostics"))]
