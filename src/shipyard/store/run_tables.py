"""The run index as ``rich`` tables and plain text, for the CLI to print: the runs list, one run's detail and the
comparison of two runs."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from shipyard.store.db import dumps
from shipyard.store.runs import HEADLINE_METRICS, METRIC_SPLITS, RunRecord, flatten, is_number

__all__ = ["compare_table", "headline_metric", "run_detail", "runs_plain", "runs_table"]

_STATUS_STYLE = {"running": "yellow", "finished": "green", "failed": "red", "killed": "magenta"}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    if isinstance(value, (dict, list)):
        return dumps(value)
    return str(value)


def _fmt_delta(value: Any) -> Text:
    if not is_number(value):
        return Text("-")
    text = f"{value:+.4g}" if isinstance(value, float) else f"{value:+d}"
    return Text(text, style="green" if value > 0 else "red" if value < 0 else "dim")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _fmt_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def headline_metric(record: RunRecord) -> tuple[str, Any] | None:
    """The validation (else test) metric to show in a one-line summary, as (name, value)."""
    for split in METRIC_SPLITS:
        values = record.metrics.get(split) or {}
        label = "val" if split == "validation" else split
        for name in HEADLINE_METRICS:
            if is_number(values.get(name)):
                return f"{label}.{name}", values[name]
        for name, value in values.items():
            if is_number(value):
                return f"{label}.{name}", value
    return None


def _status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def runs_table(records: list[RunRecord]) -> Table:
    """One line per run: id, name, status, task, model, headline metric, flags, started, duration."""
    table = Table(title="Runs", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("name")
    table.add_column("status")
    table.add_column("task", overflow="fold")
    table.add_column("model", overflow="fold")
    table.add_column("metric", overflow="fold")
    table.add_column("flags", overflow="fold")
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right")
    for record in records:
        metric = headline_metric(record)
        table.add_row(
            Text(record.run_id),
            Text(record.name),
            _status_text(record.status),
            Text(record.task),
            Text(record.model_type),
            Text(f"{metric[0]}={_fmt(metric[1])}" if metric else "-"),
            Text(", ".join(f"{k}={_fmt(v)}" for k, v in sorted(record.flags.items())) or "-"),
            Text(_fmt_time(record.started_at)),
            Text(_fmt_duration(record.duration_s)),
        )
    if not records:
        table.caption = "no runs recorded"
    return table


def runs_plain(records: list[RunRecord]) -> str:
    """The `runs_table` columns as tab-separated lines with a header, for output that is not a terminal: a rich
    table squeezed into 80 columns wraps its headers one letter per line, and a pipe wants whole fields anyway."""
    lines = ["\t".join(("id", "name", "status", "task", "model", "metric", "flags", "started", "duration"))]
    for record in records:
        metric = headline_metric(record)
        fields = (
            record.run_id,
            record.name,
            record.status,
            record.task,
            record.model_type,
            f"{metric[0]}={_fmt(metric[1])}" if metric else "-",
            ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(record.flags.items())) or "-",
            _fmt_time(record.started_at),
            _fmt_duration(record.duration_s),
        )
        lines.append("\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields))
    return "\n".join(lines)


def run_detail(record: RunRecord) -> Table:
    """Everything about one run as field / value rows: identity, status, metrics and the flattened config."""
    table = Table(title=f"Run {record.run_id}", box=box.SIMPLE_HEAD, show_header=True)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    rows: list[tuple[str, Text]] = [
        ("id", Text(record.run_id)),
        ("name", Text(record.name)),
        ("status", _status_text(record.status)),
        ("task", Text(record.task)),
        ("model", Text(record.model_type)),
        ("folder", Text(str(record.run_dir))),
        ("seed", Text(str(record.seed))),
        ("config hash", Text(record.config_hash)),
        ("started", Text(_fmt_time(record.started_at))),
        ("finished", Text(_fmt_time(record.finished_at))),
        ("duration", Text(_fmt_duration(record.duration_s))),
    ]
    if record.error:
        rows.append(("error", Text(record.error, style="red")))
    for key, value in sorted(record.flags.items()):
        rows.append((f"flag {key}", Text(_fmt(value), style="yellow")))
    for split in METRIC_SPLITS:
        for key, value in flatten(record.metrics.get(split) or {}).items():
            if value == {} or isinstance(value, list):
                continue
            rows.append((f"{split}.{key}", Text(_fmt(value))))
    for key, value in flatten(record.config).items():
        if value == {}:
            continue
        rows.append((f"config {key}", Text(_fmt(value), style="dim")))
    for label, value in rows:
        table.add_row(label, value)
    return table


def compare_table(result: dict[str, Any]) -> Table:
    """The output of :meth:`RunStore.compare` as one table: config differences, then metrics with deltas."""
    run_a, run_b = str(result.get("a", "a")), str(result.get("b", "b"))
    table = Table(title=f"{run_a} vs {run_b}", box=box.SIMPLE_HEAD)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column(Text(run_a), overflow="fold")
    table.add_column(Text(run_b), overflow="fold")
    table.add_column("delta", justify="right")
    config = result.get("config") or {}
    for key, pair in config.items():
        table.add_row(f"config.{key}", Text(_fmt(pair.get("a"))), Text(_fmt(pair.get("b"))), Text(""))
    if not config:
        table.add_row(Text("config", style="dim"), Text("identical", style="dim"), Text(""), Text(""))
    for split, metrics in (result.get("metrics") or {}).items():
        if not metrics:
            continue
        table.add_section()
        for key, triple in metrics.items():
            table.add_row(
                f"{split}.{key}",
                Text(_fmt(triple.get("a"))),
                Text(_fmt(triple.get("b"))),
                _fmt_delta(triple.get("delta")),
            )
    return table
