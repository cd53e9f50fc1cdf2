"""A retrained run's link to its parent: read the parent's run id, and record parent and feedback in the run store.

One place for every kind of retrain (tabular/text in retrain.py, recommenders, retrieval), so `shipyard runs`
and the dashboard read the same three marks whatever the task.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from shipyard.store.runs import RunStore


def run_id_of(run_dir: Path) -> str:
    """The run id recorded in ``run.json``, else the folder's name (runs from before run.json carried it)."""
    info = run_dir / "run.json"
    if info.is_file():
        return str(json.loads(info.read_text(encoding="utf-8")).get("run_id") or run_dir.name)
    return run_dir.name


def link_retrain(result: Any, parent_id: str, feedback_rows: int, until: float | None) -> dict[str, Any]:
    """Mark ``result``'s run (a RunResult) as retrained from ``parent_id`` on ``feedback_rows`` rows of feedback
    up to ``until`` (now when there was none); returns the summary every retrain reports."""
    until = time.time() if until is None else until
    runs = RunStore.for_root(result.run_dir.parent)
    runs.mark(result.run_id, "parent", parent_id)
    runs.mark(result.run_id, "feedback_rows", feedback_rows)
    runs.mark(result.run_id, "feedback_until", until)
    return {
        "run_id": result.run_id,
        "run_dir": str(result.run_dir),
        "parent": parent_id,
        "feedback_rows": feedback_rows,
        "feedback_until": until,
        "metrics": result.metrics,
    }
