"""Training progress: loss, last validation metric, examples/s (tokens/s for text), time left.

On a terminal it is a rich progress bar; anywhere else (a file, a pipe, a CI log) a redrawn bar ends up as one
truncated line, so it becomes plain log lines every few steps instead. Rates are averages over wall time (since
the start, or since the previous log line), never one step's own figure: a step's compute time leaves out data
loading, evaluation and checkpoints, and on small batches it overstates throughput a hundredfold.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)

PLAIN_LINES = 20  # off a terminal: about this many lines per run
PLAIN_MIN_SECONDS = 10.0  # ... and at least one line this often on a long run


class RateWindow:
    """Examples and tokens per second of wall time since the previous `take` (what one log line reports)."""

    def __init__(self) -> None:
        self._since = time.perf_counter()
        self._examples = 0
        self._tokens = 0

    def add(self, examples: int, tokens: int = 0) -> None:
        self._examples += examples
        self._tokens += tokens

    def take(self) -> tuple[float, float | None]:
        now = time.perf_counter()
        seconds = max(now - self._since, 1e-9)
        rates = self._examples / seconds, (self._tokens / seconds if self._tokens else None)
        self._since, self._examples, self._tokens = now, 0, 0
        return rates


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


class TrainProgress:
    def __init__(
        self,
        total_steps: int,
        *,
        enabled: bool,
        initial: int = 0,
        terminal: bool | None = None,
        every_steps: int | None = None,
    ) -> None:
        self.enabled = enabled
        self.total = total_steps
        self.initial = initial
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.every_steps = every_steps or max(1, (total_steps - initial) // PLAIN_LINES)
        self.fields: dict[str, str] = {"loss": "-", "val": "", "rate": "-"}
        self._progress: Progress | None = None
        self._task: Any = None
        self._ema: float | None = None
        self._started = time.perf_counter()
        self._last_line = self._started
        self._done = initial
        self._examples = 0
        self._tokens = 0

    def __enter__(self) -> TrainProgress:
        self._started = self._last_line = time.perf_counter()
        if self.enabled and self.terminal:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]} {task.fields[val]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "train", total=self.total, completed=self.initial, epoch=1, **self.fields
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def step(self, loss: float, epoch: int, examples: int, tokens: int = 0) -> None:
        """One optimiser step of ``examples`` rows (``tokens`` real tokens for text)."""
        if not self.enabled:
            return
        self._done += 1
        self._examples += examples
        self._tokens += tokens
        self._ema = loss if self._ema is None else 0.9 * self._ema + 0.1 * loss
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        rate = f"{self._examples / elapsed:,.0f} ex/s"
        if self._tokens:
            rate += f" {self._tokens / elapsed:,.0f} tok/s"
        self.fields.update(loss=f"{self._ema:.4f}", rate=rate)
        if self._progress is not None:
            self._progress.update(self._task, advance=1, epoch=epoch, **self.fields)
            return
        now = time.perf_counter()
        due = self._done % self.every_steps == 0 or now - self._last_line >= PLAIN_MIN_SECONDS
        if due or self._done >= self.total:
            self._last_line = now
            left = elapsed / (self._done - self.initial) * (self.total - self._done)
            val = f" {self.fields['val']}" if self.fields["val"] else ""
            log.info(
                "step %d/%d epoch %d loss %s%s %s elapsed %s left %s",
                self._done,
                self.total,
                epoch,
                self.fields["loss"],
                val,
                rate,
                _clock(elapsed),
                _clock(left),
            )

    def note(self, val: dict[str, Any]) -> None:
        if not self.enabled:
            return
        key = "accuracy" if "accuracy" in val else ("r2" if "r2" in val else "loss")
        self.fields["val"] = f"val {key} {val[key]:.4f}"
        if self._progress is not None:
            self._progress.update(self._task, **self.fields)
