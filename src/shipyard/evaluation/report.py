"""The run report: one self-contained HTML page (``run_dir/report.html``).

The page must open from a laptop, a CI artefact or an e-mail attachment, so it carries everything itself: plots
are PNGs embedded as base64 ``data:`` URIs, the CSS is inline and nothing links outside the file. Every string
that came from a user (run name, labels, column names, config values) is HTML-escaped, because a dataset label
such as ``<script>`` must show as text, never run.

Plots use matplotlib's object-oriented API on an Agg canvas (``Figure`` + ``FigureCanvasAgg``) rather than
``pyplot``: no global backend switch, no figure registry to leak memory, and safe to call from a server thread.

Later layers (text, optimisation, fairness, privacy) add their own sections as :class:`ReportSection` objects,
built with :func:`figure_to_img_tag` and :func:`table_html` (report_blocks.py, re-exported here); the standard
plots are in report_plots.py.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import re
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from markupsafe import Markup

from shipyard.evaluation._common import format_value as _format_value
from shipyard.evaluation._common import plain as _plain
from shipyard.evaluation.report_blocks import ReportSection, cell_html, figure_to_img_tag, new_figure, table_html
from shipyard.evaluation.report_plots import classification_sections, learning_curves, regression_sections
from shipyard.evaluation.splits import metric_names, metric_splits
from shipyard.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["ReportSection", "figure_to_img_tag", "new_figure", "table_html", "write_report", "write_section_page"]

# Nested summaries deeper than this are shown as JSON rather than ever-smaller nested tables.
_MAX_TABLE_DEPTH = 4
# Long lists in the data summary (e.g. every category level) are cut so the page stays readable.
_MAX_LIST_ITEMS = 50

_KEY_METRICS = {
    "classification": ("accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc", "ece"),
    "regression": ("rmse", "mae", "r2", "mse"),
}


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
            + (cell_html(v) if not isinstance(v, dict | list) else f"<td>{_nested_html(v, depth + 1)}</td>")
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
    names = metric_names(splits)
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
    from jinja2 import Environment, PackageLoader, select_autoescape  # Jinja: only when a page is rendered

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
    sections.append(("Learning curves", learning_curves(train_log or [])))
    if task == "classification":
        sections.extend(classification_sections(test, predictions))
    elif task == "regression":
        sections.extend(regression_sections(predictions))
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
