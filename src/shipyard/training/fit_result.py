"""What a fit returns: how far it went, its history and what DP or a soup added; ``summary()`` for metrics.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FitResult:
    epochs_run: int
    global_step: int
    best_epoch: int
    best_value: float | None
    stopped_early: bool
    stopped_at_time: bool = False  # training.max_time (or a deadline) ended the fit
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"
    seconds: float = 0.0
    examples_per_second: float = 0.0
    privacy: dict[str, Any] | None = None  # DP-SGD accounting (training/privacy.py), None without DP
    soup: dict[str, Any] | None = None  # a model soup's ingredients and choice (training/soup.py)

    def summary(self) -> dict[str, Any]:
        """The ``training`` block of a run's metrics.json: how long and how far the fit went."""
        out = {"epochs": self.epochs_run, "steps": self.global_step, "best_epoch": self.best_epoch}
        out |= {"stopped_early": self.stopped_early, "precision": self.precision, "seconds": round(self.seconds, 2)}
        out |= {"examples_per_second": round(self.examples_per_second, 1)}
        out |= {"stopped_at_time": True} if self.stopped_at_time else {}
        return out | ({"soup": self.soup} if self.soup is not None else {})
