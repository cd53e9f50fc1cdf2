"""Inline SVG line charts for the dashboard: no JavaScript library, no CDN, readable without scripts."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _fmt_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    threshold: float | None = None,
    width: int = 640,
    height: int = 220,
    y_label: str = "",
) -> Markup:
    """One SVG with a line per series (x = POSIX time), an optional dashed threshold and a legend."""
    points = [(x, y) for values in series.values() for x, y in values if math.isfinite(y)]
    esc = html.escape
    if not points:
        return Markup(f'<p class="empty">{esc(title)}: no checks yet</p>')
    left, right, top, bottom = 48, 12, 24, 36
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + ([threshold] if threshold is not None else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys) * 1.1 or 1.0
    x1 = x1 if x1 > x0 else x0 + 1.0

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y0) / ((y1 - y0) or 1.0) * (height - top - bottom)

    parts = [
        f'<svg class="chart" role="img" aria-label="{esc(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="16" class="chart-title">{esc(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>',
        f'<text x="4" y="{top + 8}" class="tick">{y1:.3g}</text>',
        f'<text x="4" y="{height - bottom}" class="tick">{y0:.3g}</text>',
        f'<text x="{left}" y="{height - 8}" class="tick">{_fmt_time(x0)}</text>',
        f'<text x="{width - right}" y="{height - 8}" class="tick" text-anchor="end">{_fmt_time(x1)}</text>',
    ]
    if y_label:
        parts.append(f'<text x="{left + 4}" y="{top + 10}" class="tick">{esc(y_label)}</text>')
    if threshold is not None:
        parts.append(
            f'<line x1="{left}" y1="{py(threshold):.1f}" x2="{width - right}" y2="{py(threshold):.1f}" '
            f'stroke="#d62728" stroke-dasharray="4 3"><title>threshold {threshold:g}</title></line>'
        )
    for i, (name, values) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        clean = [(x, y) for x, y in sorted(values) if math.isfinite(y)]
        if not clean:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in clean)
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}">'
            f"<title>{esc(name)}</title></polyline>"
        )
        for x, y in clean:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}">'
                f"<title>{esc(name)}: {y:.4g}</title></circle>"
            )
        lx = left + 8 + (i % 4) * 140
        ly = top + 4 + (i // 4) * 14
        parts.append(f'<rect x="{lx}" y="{ly}" width="10" height="3" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14}" y="{ly + 5}" class="legend">{esc(name[:18])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def monitor_charts(checks: list[dict[str, Any]], settings: Any) -> list[Any]:
    """The monitoring page's charts from its ``drift_check`` events (oldest first)."""
    features: dict[str, list[tuple[float, float]]] = {}
    text: dict[str, list[tuple[float, float]]] = {}
    prediction: dict[str, list[tuple[float, float]]] = {"prediction PSI": []}
    accuracy: dict[str, list[tuple[float, float]]] = {"feedback accuracy": []}
    for check in checks:
        details, at = check["details"], float(check["at"])
        for f in details.get("features") or []:
            if f.get("psi") is not None:
                features.setdefault(f["name"], []).append((at, float(f["psi"])))
            else:
                text.setdefault(f["name"], []).append((at, float(f["p_value"])))
        if details.get("prediction") and details["prediction"].get("psi") is not None:
            prediction["prediction PSI"].append((at, float(details["prediction"]["psi"])))
        if (details.get("feedback") or {}).get("accuracy") is not None:
            accuracy["feedback accuracy"].append((at, float(details["feedback"]["accuracy"])))
    t = settings.monitor.thresholds
    charts = [line_chart(features, title="Input drift per feature (PSI)", threshold=t.psi)] if features else []
    if text:
        charts.append(line_chart(text, title="Text drift: MMD permutation p-value", threshold=t.alpha))
    charts.append(line_chart(prediction, title="Prediction drift (PSI)", threshold=t.prediction_psi))
    charts.append(line_chart(accuracy, title="Accuracy on arrived feedback"))
    return charts
