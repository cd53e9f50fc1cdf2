"""``training.max_time``: stop a fit at a deadline, leaving time to evaluate the weights where it stopped.

The engine asks after every optimiser step. The answer keeps back one validation pass (the last one measured,
or before the first an estimate from the training rate: a forward pass costs about a third of a training step),
so that the stopped fit can still be judged and the best weights seen so far kept. Under torchrun rank 0 decides
and every rank follows, so no rank waits in a collective that the others have left.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


def deadline_after(seconds: float | str | None) -> float | None:
    """The ``time.monotonic()`` value ``seconds`` from now (``training.max_time``, already parsed); None: none."""
    return None if seconds is None else time.monotonic() + float(seconds)


class TimeLimit:
    def __init__(self, deadline: float | None, ctx: Any, validation_rows: int) -> None:
        self.deadline = deadline  # a time.monotonic() value; None: no limit
        self.ctx = ctx
        self.validation_rows = validation_rows
        self.started = time.monotonic()
        self.examples = 0
        self.eval_seconds: float | None = None
        self.hit = False

    def after_step(self, examples: int) -> bool:
        """True once the time left is no more than one validation pass: the fit should stop now."""
        if self.deadline is None:
            return False
        self.examples += examples
        now = time.monotonic()
        up = now + self._evaluation_estimate(now) >= self.deadline
        if self.ctx.world_size > 1:
            up = bool(self.ctx.broadcast(up))
        self.hit = up
        return up

    def _evaluation_estimate(self, now: float) -> float:
        if not self.validation_rows:
            return 0.0
        if self.eval_seconds is not None:
            return self.eval_seconds
        return self.validation_rows * (now - self.started) / max(self.examples, 1) / 3

    @contextlib.contextmanager
    def timing_evaluation(self) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.eval_seconds = time.monotonic() - started
