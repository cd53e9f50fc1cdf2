"""The ``search:`` section of a job: the ranges `shipyard tune` draws from (Optuna's TPE sampler).

Each key is a dotted path into the job (``model.learning_rate``, ``training.batch_size``, ``model.hidden``) and
its value a range: ``{low, high}`` (``log: true`` for a log scale, ``type: int`` for integers) or ``{choices: [...]}``.
Every trial is the job with the drawn values put in and validated like any job.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SearchRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    log: bool = False
    type: Literal["float", "int"] = "float"
    choices: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> SearchRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs low and high (or choices)")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, SearchRange] = Field(min_length=1)
    metric: str | None = None  # the validation metric to optimise (default: accuracy, or r2 for regression)
    direction: Literal["auto", "maximize", "minimize"] = "auto"  # auto: minimise losses and errors
    pruner: Literal["median", "none"] = "median"  # stop trials whose per-epoch validation score trails the median

    @model_validator(mode="after")
    def _paths(self) -> SearchConfig:
        for path in self.params:
            head = path.split(".", 1)[0]
            if head not in ("model", "training", "data") or "." not in path:
                raise ValueError(f"search path {path!r} must start with model., training. or data.")
            if path in ("model.type", "data.target"):
                raise ValueError(f"{path} cannot be searched")
        return self
