"""(query, passage) pairs for `task: retrieval`: load, check, build the passage collection, hold out queries.

The passage collection is the distinct passage texts, each with the group (e.g. intent) it was written for; a
query's hits are the passages of its group. Held-out queries are drawn per group with a seeded generator
(``held_out: queries``: every group keeps its share of training queries), or whole groups are held out
(``held_out: groups``: a harder test, neither their queries nor their passages are trained on). Validation queries
come from the training groups in both cases. The test queries' own passages stay in the collection (a search
engine indexes every answer) but are never a training pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.retrieval import RetrievalConfig, RetrievalSplit
from shipyard.config.schema import Job
from shipyard.data.sources import load_source
from shipyard.errors import ShipyardError

SPLITS = ("train", "validation", "test")


@dataclass
class PairData:
    frame: pd.DataFrame  # query, passage, group, passage_id, split (one row per query)
    passages: pd.DataFrame  # passage_id, text, group (the collection the index holds)
    groups: list[str]

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name].reset_index(drop=True)


def load_pairs(job: Job, *, base_dir: Path) -> PairData:
    """The job's source as pairs with a split column; every bad row is an error naming it (nothing dropped)."""
    cfg = job.retrieval
    assert cfg is not None  # Job's validator: task retrieval has the section
    raw = load_source(job.data.source, base_dir=base_dir, field="data.source")
    where = str(job.data.source.path or "data.source")
    frame = pairs_from_frame(raw, cfg, where=where)
    if cfg.split.held_out == "given":
        frame["split"] = given_splits(raw, cfg.split.split_column, where=where)
    else:
        frame["split"] = split_queries(frame["group"].to_numpy(), cfg.split)
    passages = passage_collection(frame)
    frame = frame.merge(passages[["text", "passage_id"]], left_on="passage", right_on="text").drop(columns="text")
    return PairData(frame=frame, passages=passages, groups=sorted(frame["group"].unique().tolist()))


def pairs_from_frame(raw: pd.DataFrame, cfg: RetrievalConfig, *, where: str) -> pd.DataFrame:
    cols = {"query": cfg.query_column, "passage": cfg.passage_column, "group": cfg.group_column}
    missing = [c for c in cols.values() if c not in raw.columns]
    if missing:
        raise ShipyardError(
            f"column(s) {', '.join(map(repr, missing))} not in the data; it has {', '.join(map(str, raw.columns))}",
            where=where,
            hint="set retrieval.query_column / passage_column / group_column",
        )
    frame = pd.DataFrame({k: raw[v] for k, v in cols.items()})
    for key, column in cols.items():
        text = frame[key].astype("string").str.strip()
        bad = text.isna() | (text == "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ShipyardError(
                f"{int(bad.sum())} row(s) have an empty {key} (first: data row {row + 1})",
                where=f"{where}, row {row + 1}, column {column!r}",
                hint="remove or fill those rows: a retrieval pair needs a query, a passage and a group",
            )
        frame[key] = text.astype(str)
    if frame["group"].nunique() < 2:
        raise ShipyardError("retrieval needs at least two groups (intents) to tell hits from misses", where=where)
    return frame.reset_index(drop=True)


def passage_collection(frame: pd.DataFrame) -> pd.DataFrame:
    """The distinct passages in first-seen order; a text written for two groups keeps the first (logged count)."""
    first = frame.drop_duplicates("passage")
    return pd.DataFrame(
        {
            "passage_id": np.arange(len(first), dtype=np.int64),
            "text": first["passage"].tolist(),
            "group": first["group"].tolist(),
        }
    )


def given_splits(raw: pd.DataFrame, column: str, *, where: str) -> np.ndarray:
    """``held_out: given``: the split each row names (train / validation / test); anything else names its row."""
    if column not in raw.columns:
        raise ShipyardError(
            f"held_out: given needs a {column!r} column; the data has {', '.join(map(str, raw.columns))}",
            where=where,
            hint="set retrieval.split.split_column",
        )
    names = raw[column].astype("string").str.strip()
    bad = ~names.isin(SPLITS).fillna(False).to_numpy(bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ShipyardError(
            f"{int(bad.sum())} row(s) name no split (first: {raw[column].iloc[row]!r} in data row {row + 1})",
            where=f"{where}, row {row + 1}, column {column!r}",
            hint=f"each row's {column} must be one of {', '.join(SPLITS)}",
        )
    return names.to_numpy(dtype=object)


def split_queries(groups: np.ndarray, cfg: RetrievalSplit) -> np.ndarray:
    """One split name per row, seeded; see the module docstring for the two ways of holding out."""
    rng = np.random.default_rng(cfg.seed)
    out = np.full(len(groups), "train", dtype=object)
    names = np.array(sorted(set(groups.tolist())))
    if cfg.held_out == "groups":
        n_test = max(1, round(len(names) * cfg.test_fraction))
        if n_test >= len(names):
            raise ShipyardError("held_out: groups leaves no group to train on", where="retrieval.split.test_fraction")
        test_groups = set(rng.permutation(names)[:n_test].tolist())
        out[np.isin(groups, list(test_groups))] = "test"
        fractions = {"validation": cfg.validation_fraction}
    else:
        fractions = {"test": cfg.test_fraction, "validation": cfg.validation_fraction}
    for name in names:
        rows = np.flatnonzero((groups == name) & (out == "train"))
        rows = rng.permutation(rows)
        start = 0
        for split, fraction in fractions.items():
            take = round(len(rows) * fraction)
            if fraction and len(rows) >= 3:
                take = max(1, take)
            out[rows[start : start + take]] = split
            start += take
    return out


def encode_texts(tokenizer: Any, texts: list[str], max_length: int, prefix: str = "") -> dict[str, np.ndarray]:
    """Token ids and mask padded to ``max_length`` (batches trim to their longest row)."""
    enc = tokenizer(texts, max_length=max_length, truncation=True, padding="max_length", return_tensors="np")
    return {
        f"{prefix}input_ids": enc["input_ids"].astype(np.int64),
        f"{prefix}attention_mask": enc["attention_mask"].astype(np.int64),
    }


def split_summary(data: PairData) -> dict[str, Any]:
    """What data_summary.json records: sizes per split, groups per split, collection size."""
    out: dict[str, Any] = {"passages": len(data.passages), "groups": len(data.groups), "splits": {}}
    for name in SPLITS:
        part = data.split(name)
        out["splits"][name] = {"queries": len(part), "groups": int(part["group"].nunique())}
    return out
