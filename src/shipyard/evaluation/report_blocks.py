"""The report's building blocks, for every layer that adds a section: :class:`ReportSection`, figures on their own
Agg canvas (:func:`new_figure`, :func:`figure_to_img_tag`, embedded as base64 PNGs) and escaped tables
(:func:`table_html`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shipyard.evaluation._common import format_value as _format_value
from shipyard.evaluation._common import is_number as _is_number
from shipyard.evaluation._common import plain as _plain

__all__ = ["ReportSection", "figure_to_img_tag", "new_figure", "table_html"]

_DPI = 100


@dataclass(frozen=True)
class ReportSection:
    """One extra section of the report: ``title`` is plain text (escaped on output); ``html`` is trusted HTML
    that the producing layer has already escaped (use :func:`table_html` / :func:`figure_to_img_tag`)."""

    title: str
    html: str


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


def cell_html(value: Any) -> str:
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
            cells.append(cell_html(value))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<div class="scroll"><table><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


# matplotlib treats text between two '$' as mathtext; a label like "$5-$10" must print literally
def mpl_text(text: str, limit: int = 24) -> str:
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------------------
