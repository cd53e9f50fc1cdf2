"""The training log, ``train_log.jsonl``: one JSON object per step or epoch event, cut back on resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.io import atomic_write_text
from shipyard.training.callbacks import TrainState


class JsonlLog:
    """Appends one JSON line per entry (main process only) and counts them in the fit's state for resume."""

    def __init__(self, path: Path, state: TrainState, enabled: bool) -> None:
        self.path = path
        self.state = state
        self.enabled = enabled
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        entry = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in entry.items()}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        self.state.log_lines += 1


def truncate_log(path: Path, lines: int) -> None:
    if not path.is_file():
        return
    kept = path.read_text(encoding="utf-8").splitlines()[:lines]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
