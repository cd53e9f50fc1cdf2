"""A rich progress bar for training: loss, last validation metric, examples/s (tokens/s for text), time left."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    def __init__(self, total_steps: int, *, enabled: bool, initial: int = 0) -> None:
        self.enabled = enabled
        self.total = total_steps
        self.initial = initial
        self.fields: dict[str, str] = {"loss": "-", "val": "", "rate": "-"}
        self._progress: Progress | None = None
        self._task: Any = None
        self._ema: float | None = None

    def __enter__(self) -> TrainProgress:
        if self.enabled:
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

    def step(self, loss: float, examples_per_s: float, tokens_per_s: float | None, epoch: int) -> None:
        if self._progress is None:
            return
        self._ema = loss if self._ema is None else 0.9 * self._ema + 0.1 * loss
        rate = f"{examples_per_s:,.0f} ex/s"
        if tokens_per_s:
            rate += f" {tokens_per_s:,.0f} tok/s"
        self.fields.update(loss=f"{self._ema:.4f}", rate=rate)
        self._progress.update(self._task, advance=1, epoch=epoch, **self.fields)

    def note(self, val: dict[str, Any]) -> None:
        if self._progress is None:
            return
        key = "accuracy" if "accuracy" in val else ("r2" if "r2" in val else "loss")
        self.fields["val"] = f"val {key} {val[key]:.4f}"
        self._progress.update(self._task, **self.fields)
