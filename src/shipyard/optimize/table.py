"""The trade-off table of an optimisation: flattened rows, a plain-text table, and the report section.

The HTML (table, latency-vs-quality plot, the page of its own) is rendered by the evaluation layer's report
helpers, so the optimisation section looks like every other section of the run report.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html, write_section_page

TABLE_FILE = "optimize.json"
SECTION_FILE = "optimize_section.html"

__all__ = ["SECTION_FILE", "TABLE_FILE", "format_table", "report_section", "table_rows", "write_section"]

TABLE_COLUMNS = (
    "method",
    "variant",
    "status",
    "backend",
    "size_MB",
    "size_ratio",
    "parameters",
    "sparsity",
    "param_reduction",
    "latency_p50_ms",
    "latency_p95_ms",
    "speedup_p50",
    "throughput_rows_s",
    "metric_value",
    "delta",
    "agreement",
    "max_abs_diff",
    "notes",
)


def table_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows flattened for display (the HTML section and the CLI / bench printouts)."""
    out = []
    for row in table["rows"]:
        parity = row.get("parity") or {}
        notes = list(row.get("notes", []))
        if row.get("error"):
            notes.append(row["error"])
        out.append(
            {
                "method": row["method"],
                "variant": row.get("variant", ""),
                "status": row["status"],
                "backend": row.get("backend", ""),
                "size_MB": round(row["size_bytes"] / 1e6, 3) if row.get("size_bytes") else None,
                "size_ratio": row.get("size_ratio"),
                "parameters": row.get("parameters"),
                "sparsity": row.get("sparsity"),
                "param_reduction": row.get("parameter_reduction"),
                "latency_p50_ms": row.get("latency_p50_ms"),
                "latency_p95_ms": row.get("latency_p95_ms"),
                "speedup_p50": row.get("speedup_p50"),
                "throughput_rows_s": row.get("throughput_rows_s"),
                "metric_value": row.get("value"),
                "delta": row.get("delta"),
                "agreement": row.get("agreement"),
                "max_abs_diff": parity.get("max_abs_diff"),
                "notes": "; ".join(notes),
            }
        )
    return out


def format_table(table: dict[str, Any]) -> str:
    """A plain-text table for terminals."""
    cols = [c for c in TABLE_COLUMNS if c not in ("notes", "latency_p95_ms")]
    rows = table_rows(table)
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    for r in rows:
        if r["notes"]:
            lines.append(f"  {r['method']}: {r['notes']}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _latency_plot(table: dict[str, Any]) -> str:
    """Latency against quality, one point per row that worked (the original a black star), as an ``<img>``."""
    metric = table.get("metric", "metric")
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for row in table["rows"]:
        if row["status"] != "ok" or row.get("latency_p50_ms") is None or row.get("value") is None:
            continue
        original = row["method"] == "original"
        ax.scatter(
            [row["latency_p50_ms"]],
            [row["value"]],
            s=60 if original else 40,
            marker="*" if original else "o",
            color="black" if original else None,
            zorder=3,
        )
        ax.annotate(row["method"], (row["latency_p50_ms"], row["value"]), textcoords="offset points", xytext=(5, 4))
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency p50 (ms, log scale)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"Latency vs {metric} ({table.get('threads')} threads)")
    ax.grid(True, alpha=0.3)
    return figure_to_img_tag(fig, alt=f"latency versus {metric}")


def report_section(table: dict[str, Any]) -> ReportSection:
    """The trade-off table and a latency-vs-quality scatter plot as a `ReportSection`."""
    failed = [r for r in table["rows"] if r["status"] != "ok"]
    intro = (
        f"<p>{html.escape(str(table.get('model_type')))} model, measured on {int(table.get('eval_rows', 0))} "
        f"{html.escape(str(table.get('evaluated_on')))} rows with {int(table.get('threads') or 1)} threads. "
        "Size is the weights file; speed-up is the original's batch-1 p50 latency divided by each row's.</p>"
    )
    if failed:
        intro += "<p><strong>Failed:</strong> " + html.escape(", ".join(r["method"] for r in failed)) + "</p>"
    body = intro + table_html(table_rows(table), columns=list(TABLE_COLUMNS)) + _latency_plot(table)
    return ReportSection(title="Optimisation trade-offs", html=body)


def write_section(path: Path, section: ReportSection, table: dict[str, Any], *, run_name: str) -> Path:
    """The section as a page of its own (``optimized/optimize_section.html``), in the run report's template."""
    return write_section_page(
        path, section, task=str(table.get("task")), model_type=str(table.get("model_type")), run_name=run_name
    )
