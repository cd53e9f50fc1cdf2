"""The run report: one self-contained HTML page (``run_dir/report.html``).

The page must open from a laptop, a CI artefact or an e-mail attachment, so it carries everything itself: plots
are PNGs embedded as base64 ``data:`` URIs, the CSS is inline and nothing links outside the file. Every string
that came from a user (run name, labels, column names, config values) is HTML-escaped, because a dataset label
such as ``<script>`` must show as text, never run.

Plots use matplotlib's object-oriented API on an Agg canvas (``Figure`` + ``FigureCanvasAgg``) rather than
``pyplot``: no global backend switch, no figure registry to leak memory, and safe to call from a server thread.

Later layers (text, optimisation, fairness, privacy) add their own sections as :class:`ReportSection` objects,
built with :func:`figure_to_img_tag` and :func:`table_html`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shipyard.errors import ShipyardError
from shipyard.evaluation._common import format_value as _format_value
from shipyard.evaluation._common import is_number as _is_number
from shipyard.evaluation._common import plain as _plain
from shipyard.evaluation.metrics import DEFAULT_ECE_BINS, reliability_bins, to_probabilities
from shipyard.evaluation.splits import metric_splits
from shipyard.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["ReportSection", "figure_to_img_tag", "new_figure", "table_html", "write_report", "write_section_page"]

# Scatter plots of a million test rows make a multi-megabyte PNG and show nothing more than 5000 points do.
_MAX_SCATTER_POINTS = 5000
# Above this many classes the per-cell counts of the confusion matrix overlap and become noise.
_ANNOTATE_MAX_CLASSES = 20
# Past this many classes a matrix image has unreadable labels (151 classes made a 2710x2455 image): the report lists
# the most frequent confusions instead.
_MATRIX_MAX_CLASSES = 30
_TOP_CONFUSIONS = 30
# Nested summaries deeper than this are shown as JSON rather than ever-smaller nested tables.
_MAX_TABLE_DEPTH = 4
# Long lists in the data summary (e.g. every category level) are cut so the page stays readable.
_MAX_LIST_ITEMS = 50
_DPI = 100

_KEY_METRICS = {
    "classification": ("accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc", "ece"),
    "regression": ("rmse", "mae", "r2", "mse"),
}


@dataclass(frozen=True)
class ReportSection:
    """One extra section of the report: ``title`` is plain text (escaped on output); ``html`` is trusted HTML
    that the producing layer has already escaped (use :func:`table_html` / :func:`figure_to_img_tag`)."""

    title: str
    html: str


# --------------------------------------------------------------------------------------------------------------
# helpers for every layer
# --------------------------------------------------------------------------------------------------------------


def new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A matplotlib Figure on its own Agg canvas, outside pyplot's registry (nothing to close, thread-safe)."""
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def figure_to_img_tag(fig: Figure, *, alt: str = "plot", wide: bool = False) -> str:
    """Render ``fig`` to PNG and return an ``<img>`` tag with the bytes inlined as a base64 data URI.

    ``wide=True`` keeps the image at full size (the reader scrolls) instead of shrinking it to the page width;
    wrap it in ``<div class="scroll">``. A figure made through ``pyplot`` is closed afterwards so long-running
    processes do not accumulate them.
    """
    buf = io.BytesIO()
    # no "Software" tag: it carries a matplotlib URL and a version string the page has no use for
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    if getattr(fig.canvas, "manager", None) is not None:
        # only pyplot-managed figures have a manager; importing pyplot is deferred to that case
        import matplotlib.pyplot as plt

        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cls = ' class="wide"' if wide else ""
    return f'<img{cls} src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'


def _cell(value: Any) -> str:
    cls = ' class="num"' if _is_number(value) else ""
    return f"<td{cls}>{html.escape(_format_value(value))}</td>"


def table_html(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None) -> str:
    """An HTML table from a list of dicts; columns are the union of keys in first-seen order (or ``columns``).

    Every header and value is escaped; numbers are right-aligned and rounded for reading. Nested values are
    shown as compact JSON. Returns an empty string for no rows.
    """
    if not rows:
        return ""
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(str(key), None)
        columns = list(seen)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if isinstance(value, Mapping | list | tuple):
                value = json.dumps(_plain(value), default=str)
            cells.append(_cell(value))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<div class="scroll"><table><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


# matplotlib treats text between two '$' as mathtext; a label like "$5-$10" must print literally
def _mpl_text(text: str, limit: int = 24) -> str:
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------------------


def _learning_curves(train_log: Sequence[Mapping[str, Any]]) -> str:
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
                ax.plot(xs, ys, marker="o" if len(xs) <= 50 else None, markersize=3, label=_mpl_text(key))
            ax.set_title(_mpl_text(title, 40))
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
    names = [_mpl_text(label) for label in labels]
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


def _classification_sections(test_metrics: Mapping[str, Any], predictions: Mapping[str, Any]) -> list[tuple[str, str]]:
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


def _regression_sections(predictions: Mapping[str, Any]) -> list[tuple[str, str]]:
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


def _nested_html(value: Any, depth: int = 0) -> str:
    """A nested summary as readable HTML: dicts -> key/value tables, lists of dicts -> tables, scalars -> text."""
    value = _plain(value)
    if isinstance(value, dict):
        if not value:
            return '<span class="note">(empty)</span>'
        if depth >= _MAX_TABLE_DEPTH:
            return f"<code>{html.escape(json.dumps(value, default=str))}</code>"
        # a dict whose values are all dicts with scalar leaves reads best as one wide table (e.g. per column)
        if (
            all(
                isinstance(v, dict) and v and all(not isinstance(x, dict | list) for x in v.values())
                for v in value.values()
            )
            and len(value) > 1
        ):
            return table_html([{"": k, **v} for k, v in value.items()])
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th>"
            + (_cell(v) if not isinstance(v, dict | list) else f"<td>{_nested_html(v, depth + 1)}</td>")
            + "</tr>"
            for k, v in value.items()
        )
        return f'<div class="scroll"><table><tbody>{rows}</tbody></table></div>'
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return table_html(value[:_MAX_LIST_ITEMS]) + (
                f'<p class="note">… {len(value) - _MAX_LIST_ITEMS} more rows</p>'
                if len(value) > _MAX_LIST_ITEMS
                else ""
            )
        shown = ", ".join(
            _format_value(v) if not isinstance(v, dict | list) else json.dumps(v, default=str)
            for v in value[:_MAX_LIST_ITEMS]
        )
        more = f" … (+{len(value) - _MAX_LIST_ITEMS} more)" if len(value) > _MAX_LIST_ITEMS else ""
        return html.escape(shown + more) if value else '<span class="note">(none)</span>'
    return html.escape(_format_value(value))


def _metrics_table(splits: Mapping[str, Mapping[str, Any]]) -> str:
    names: dict[str, None] = {}
    for values in splits.values():
        for key, value in values.items():
            if _is_number(value) or value is None:
                names.setdefault(key, None)
    if not names:
        return ""
    rows = [{"metric": name, **{split: values.get(name) for split, values in splits.items()}} for name in names]
    parts = [table_html(rows)]
    for split, values in splits.items():
        residuals = values.get("residuals")
        if isinstance(residuals, Mapping):
            parts.append(f"<h3>Residual summary ({html.escape(split)})</h3>" + table_html([dict(residuals)]))
    return "".join(parts)


def _anchor(title: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    anchor, i = base, 2
    while anchor in used:
        anchor, i = f"{base}-{i}", i + 1
    used.add(anchor)
    return anchor


def _config_get(config: Mapping[str, Any], *path: str) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _shipyard_version() -> str:
    try:
        return metadata.version("shipyard")
    except metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------------------


def _render_page(
    *,
    title: str,
    task: str,
    model_type: str,
    run_name: str,
    cards: list[dict[str, str]],
    sections: list[tuple[str, str]],
) -> str:
    """The one HTML page template, for the run report and for a section written on its own."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    used: set[str] = set()
    env = Environment(
        loader=PackageLoader("shipyard.evaluation", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
    )
    return env.get_template("report.html.j2").render(
        title=title,
        task=task,
        model_type=model_type,
        run_name=run_name,
        cards=cards,
        # section bodies were escaped as they were built; titles are escaped by the template
        sections=[{"title": t, "anchor": _anchor(t, used), "html": Markup(body)} for t, body in sections],
        version=_shipyard_version(),
        generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_section_page(path: Path, section: ReportSection, *, task: str, model_type: str, run_name: str) -> Path:
    """Write one `ReportSection` as a page of its own (same template and styles as the run report), atomically."""
    page = _render_page(
        title=section.title,
        task=task,
        model_type=model_type,
        run_name=run_name,
        cards=[],
        sections=[(section.title, section.html)],
    )
    return atomic_write_text(Path(path), page)


def write_report(
    run_dir: Path,
    *,
    job_config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    summary: Mapping[str, Any],
    train_log: Sequence[Mapping[str, Any]],
    test_predictions: Mapping[str, Any] | None,
    extra_sections: Sequence[ReportSection] = (),
) -> Path:
    """Write ``run_dir/report.html`` atomically and return its path.

    ``test_predictions`` is ``{"y_true", "outputs", "labels"}`` for the test split (outputs: probabilities or
    logits (N, K), or values (N,)); plots that need it are skipped when it is empty.
    """
    run_dir = Path(run_dir)
    task = str(job_config.get("task") or "unknown").lower()
    model_type = str(_config_get(job_config, "model", "type") or "unknown")
    title = str(job_config.get("name") or _config_get(job_config, "output", "name") or run_dir.name)
    splits = metric_splits(metrics)
    test = splits.get("test") or splits.get("validation") or {}
    predictions = test_predictions or {}

    cards = [
        {"name": name.replace("_", " "), "value": _format_value(test[name])}
        for name in _KEY_METRICS.get(task, ())
        if name in test
    ]
    if "n" in test:
        cards.append({"name": "test rows", "value": _format_value(test["n"])})

    sections: list[tuple[str, str]] = []
    if metrics.get("warnings"):  # e.g. a classifier that ends at the majority-class baseline (evaluation/baseline.py)
        items = "".join(f"<li>{html.escape(str(w))}</li>" for w in metrics["warnings"])
        sections.append(("Warnings", f'<ul class="warnings">{items}</ul>'))
    metrics_html = _metrics_table(splits)
    sections.append(("Metrics", metrics_html or '<p class="note">No metrics recorded.</p>'))
    sections.append(("Learning curves", _learning_curves(train_log or [])))
    if task == "classification":
        sections.extend(_classification_sections(test, predictions))
    elif task == "regression":
        sections.extend(_regression_sections(predictions))
    sections.append(("Data summary", _nested_html(summary) if summary else '<p class="note">No summary.</p>'))
    config_yaml = yaml.safe_dump(_plain(job_config), sort_keys=False, allow_unicode=True)
    sections.append(("Configuration", f"<pre>{html.escape(config_yaml)}</pre>"))
    for extra in extra_sections:
        sections.append((extra.title, extra.html))

    page = _render_page(
        title=title, task=task, model_type=model_type, run_name=run_dir.name, cards=cards, sections=sections
    )
    path = atomic_write_text(run_dir / "report.html", page)
    log.info("wrote report %s (%d sections)", path, len(sections))
    return path
