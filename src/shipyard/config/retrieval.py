"""The `retrieval:` section of a `task: retrieval` job: which columns hold queries, passages and the group that
decides a hit, how queries are held out, hard negatives, the index and the ranking.

A hit for a query is any passage of the query's group (for Bitext: a response written for the query's intent).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrievalSplit(_Strict):
    # `queries`: held-out queries stratified by group (every group is seen in training);
    # `groups`: whole groups held out (a harder test: their queries and their passages are never trained on);
    # `given`: the source names each row's split in `split_column` (train / validation / test): how `shipyard
    # retrain` keeps the parent's held-out queries while adding feedback pairs
    held_out: Literal["queries", "groups", "given"] = "queries"
    split_column: str = "split"
    validation_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0, lt=0.6)
    seed: int = 0


class IndexConfig(_Strict):
    # `auto`: exact (flat inner product) up to `hnsw_above` passages, HNSW past it (bench/retrieval.py measured
    # where the flat search passes 5 ms per query on this machine)
    kind: Literal["auto", "flat", "hnsw"] = "auto"
    hnsw_above: int = Field(default=50_000, ge=1)
    hnsw_m: int = Field(default=32, ge=4, le=128)
    ef_search: int = Field(default=128, ge=8)


class RetrievalConfig(_Strict):
    query_column: str = "query"
    passage_column: str = "passage"
    group_column: str = "group"
    # the column that names a passage for the passage collection; None: passages are the distinct texts
    split: RetrievalSplit = Field(default_factory=RetrievalSplit)
    hard_negatives: bool = False  # one BM25-mined passage of another group per training pair
    ranking: Literal["dense", "bm25", "hybrid"] = "dense"
    rrf_k: int = Field(default=60, ge=1)  # reciprocal rank fusion constant for `hybrid`
    index: IndexConfig = Field(default_factory=IndexConfig)
    cutoffs: list[int] = Field(default_factory=lambda: [1, 5, 10], min_length=1)

    @model_validator(mode="after")
    def _distinct_columns(self) -> RetrievalConfig:
        cols = [self.query_column, self.passage_column, self.group_column]
        if len(set(cols)) != 3:
            raise ValueError("retrieval.query_column, passage_column and group_column must be three columns")
        if self.split.held_out == "given" and self.split.split_column in cols:
            raise ValueError("retrieval.split.split_column must not be the query, passage or group column")
        return self
