"""Splits of an interaction log that respect time, and the random split published figures use.

- ``leave_last_out``: each user's latest event is the test event, the one before it validation (users with too
  few events keep them all in train, so no user is unknown at test time);
- ``time_cut``: one global cut in time (train before, validation / test after), which also tests unseen users;
- ``random``: a seeded shuffle, for comparison with published figures on random folds.
- ``cold_items``: a share of items held out of training entirely, for cold-start evaluation.

Every function returns ``{"train", "validation", "test"}`` frames (the input rows, none dropped, none repeated).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shipyard.errors import ShipyardError


def leave_last_out(frame: pd.DataFrame, *, validation: bool = True, min_events: int = 3) -> dict[str, pd.DataFrame]:
    """Per user, the last event (by timestamp, ties by row order) -> test, the one before -> validation."""
    if min_events < 2:
        raise ShipyardError("min_events must be at least 2 (one to train on, one to test)", where="split.min_events")
    ordered = frame.sort_values("timestamp", kind="stable")
    rank_from_end = ordered.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    size = ordered.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    eligible = size >= min_events
    test = eligible & (rank_from_end == 0)
    val = eligible & (rank_from_end == 1) if validation else np.zeros(len(ordered), dtype=bool)
    return {
        "train": ordered.loc[~test & ~val],
        "validation": ordered.loc[val],
        "test": ordered.loc[test],
    }


def time_cut(frame: pd.DataFrame, *, validation: float = 0.1, test: float = 0.1) -> dict[str, pd.DataFrame]:
    """The earliest ``1 - validation - test`` share of events trains; the next share validates; the rest tests."""
    if validation < 0 or test <= 0 or validation + test >= 1:
        raise ShipyardError(f"bad shares validation={validation}, test={test}", where="split", hint="0 < share < 1")
    ordered = frame.sort_values("timestamp", kind="stable")
    n = len(ordered)
    a, b = round(n * (1 - validation - test)), round(n * (1 - test))
    return {"train": ordered.iloc[:a], "validation": ordered.iloc[a:b], "test": ordered.iloc[b:]}


def random_split(
    frame: pd.DataFrame, *, validation: float = 0.1, test: float = 0.1, seed: int = 0
) -> dict[str, pd.DataFrame]:
    if validation < 0 or test <= 0 or validation + test >= 1:
        raise ShipyardError(f"bad shares validation={validation}, test={test}", where="split", hint="0 < share < 1")
    order = np.random.default_rng(seed).permutation(len(frame))
    n = len(frame)
    a, b = round(n * (1 - validation - test)), round(n * (1 - test))
    return {"train": frame.iloc[order[:a]], "validation": frame.iloc[order[a:b]], "test": frame.iloc[order[b:]]}


def cold_items(frame: pd.DataFrame, *, share: float = 0.1, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train events, test events): a seeded ``share`` of the items is held out of training entirely."""
    if not 0 < share < 1:
        raise ShipyardError(f"cold item share {share} is not in (0, 1)", where="split.cold_share")
    items = np.sort(frame["item_id"].unique())
    rng = np.random.default_rng(seed)
    held = set(rng.choice(items, size=max(1, round(share * len(items))), replace=False).tolist())
    mask = frame["item_id"].isin(held).to_numpy()
    return frame.loc[~mask], frame.loc[mask]


def split_interactions(frame: pd.DataFrame, method: str, **options: float) -> dict[str, pd.DataFrame]:
    """Dispatch on the configured method name."""
    if method == "leave_last_out":
        return leave_last_out(frame, min_events=int(options.get("min_events", 3)))
    if method == "time":
        return time_cut(frame, validation=options.get("validation", 0.1), test=options.get("test", 0.1))
    if method == "random":
        return random_split(
            frame,
            validation=options.get("validation", 0.1),
            test=options.get("test", 0.1),
            seed=int(options.get("seed", 0)),
        )
    raise ShipyardError(f"unknown split {method!r}; expected leave_last_out, time or random", where="data.split")
