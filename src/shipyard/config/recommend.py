"""The ``recommend`` section of a ``task: recommendation`` job: where the interactions are, how to split them,
which model, how to evaluate. Training settings are the job's usual ``training`` section.

```yaml
task: recommendation
recommend:
  data:
    format: movielens            # a MovieLens-100K folder (u.data, u.item, u.user); or csv / tsv / parquet
    path: ${SHIPYARD_DATA_DIR}/movielens-100k
    # csv / tsv / parquet: the event file's column names, an optional items table (item_id + title, genres,
    # text ...) and users table (user_id + features)
    columns: {user_id: user_id, item_id: item_id, rating: rating, timestamp: timestamp}
    items: null
    users: null
    implicit: false              # events without ratings (each counts 1)
    duplicates: keep             # keep | last | error
  split: {method: leave_last_out}   # leave_last_out | time | random (validation / test shares, seed) | given
  model: {type: bpr, dim: 64}       # mf | bpr | two_tower
  evaluation: {k: 10, sampled_negatives: 100}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InteractionColumns(_Strict):
    user_id: str = "user_id"
    item_id: str = "item_id"
    rating: str | None = "rating"
    timestamp: str = "timestamp"


class InteractionData(_Strict):
    format: Literal["movielens", "csv", "tsv", "parquet"] = "movielens"
    path: str
    columns: InteractionColumns = Field(default_factory=InteractionColumns)
    items: str | None = None  # csv / parquet table with an item_id column (title, genres "a|b", text, numbers)
    users: str | None = None
    implicit: bool = False
    duplicates: Literal["keep", "last", "error"] = "keep"
    min_rating: float | None = None  # implicit use of ratings: keep events rated at least this (None: all)


class GivenSplits(_Strict):
    """``split.method: given``: each split's events from its own Parquet file (user_id, item_id, rating,
    timestamp), e.g. a parent run's stored splits plus served events (`shipyard retrain`)."""

    train: str
    validation: str
    test: str


class InteractionSplit(_Strict):
    method: Literal["leave_last_out", "time", "random", "given"] = "leave_last_out"
    validation: float = Field(default=0.1, ge=0, lt=1)  # time / random only
    test: float = Field(default=0.1, gt=0, lt=1)
    min_events: int = Field(default=3, ge=2)  # leave_last_out: users with fewer events stay in train
    seed: int = 0
    files: GivenSplits | None = None  # given only

    @model_validator(mode="after")
    def _given_needs_files(self) -> InteractionSplit:
        if (self.method == "given") != (self.files is not None):
            raise ValueError("split.files (train, validation, test) goes with split.method: given, and only with it")
        return self


class RecommenderModel(_Strict):
    type: Literal["mf", "bpr", "two_tower"] = "bpr"
    dim: int = Field(default=64, ge=1, le=4096)
    reg: float | None = Field(default=None, ge=0)  # None: 0.1 for mf, 1e-4 for bpr
    # two-tower
    hidden: int = Field(default=256, ge=1)
    history: int = Field(default=50, ge=1, le=1000)
    temperature: float = Field(default=0.1, gt=0)
    id_dropout: float = Field(default=0.5, ge=0, lt=1)
    text: bool = True  # embed item text with the bundled MiniLM (two-tower)

    def regularisation(self) -> float:
        return self.reg if self.reg is not None else (0.1 if self.type == "mf" else 1e-4)


class RecommendEvaluation(_Strict):
    k: int = Field(default=10, ge=1, le=1000)
    sampled_negatives: int = Field(default=100, ge=1)


class RecommendConfig(_Strict):
    data: InteractionData
    split: InteractionSplit = Field(default_factory=InteractionSplit)
    model: RecommenderModel = Field(default_factory=RecommenderModel)
    evaluation: RecommendEvaluation = Field(default_factory=RecommendEvaluation)

    @model_validator(mode="after")
    def _explicit_needs_ratings(self) -> RecommendConfig:
        if self.model.type == "mf" and self.data.implicit:
            raise ValueError("model.type mf learns ratings; implicit data needs bpr or two_tower")
        if self.data.format != "movielens" and not self.data.implicit and self.data.columns.rating is None:
            raise ValueError("data.columns.rating is required unless data.implicit is true")
        return self
