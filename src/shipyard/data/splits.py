"""Train / validation / test splits: seeded random or stratified fractions, k-fold for small data, and separate
validation/test files when a job gives them (then only the remaining fractions are carved from ``source``).

Stratified splits keep at least one row of every class in train, so a rare class is never held out entirely; a
label that still shows up only in validation/test (from a separate file) is an error.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from shipyard.config.schema import SplitConfig
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")


def label_key(value: object) -> str:
    """The class name of a label value as a string (1.0 and 1 are the same class)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _allocate(n: int, fractions: list[float]) -> list[int]:
    """Row counts for held-out parts of a group of ``n`` rows, leaving at least one for train when n > 0."""
    counts = [round(n * f) for f in fractions]
    while n > 0 and sum(counts) >= n:
        # shrink the largest held-out part first
        i = int(np.argmax(counts))
        counts[i] -= 1
    return counts


def _groups(frame: pd.DataFrame, target: str, stratify: bool) -> list[np.ndarray]:
    positions = np.arange(len(frame))
    if not stratify:
        return [positions]
    keys = frame[target].map(label_key).to_numpy()
    return [positions[keys == k] for k in sorted(set(keys))]


def _carve(
    frame: pd.DataFrame, fractions: list[float], rng: np.random.Generator, groups: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Shuffle each group and cut the held-out parts off its front; the rest is train."""
    held: list[list[np.ndarray]] = [[] for _ in fractions]
    train: list[np.ndarray] = []
    for group in groups:
        order = rng.permutation(group)
        start = 0
        for i, count in enumerate(_allocate(len(order), fractions)):
            held[i].append(order[start : start + count])
            start += count
        train.append(order[start:])
    cat = [np.sort(np.concatenate(h)) if h else np.array([], dtype=int) for h in held]
    return np.sort(np.concatenate(train)), cat


def _kfold_parts(positions: np.ndarray, keys: np.ndarray | None, folds: int, fold: int, rng: np.random.Generator):
    """(train, held-out) positions for fold ``fold``; stratified by dealing each class round-robin."""
    assignment = np.empty(len(positions), dtype=int)
    if keys is None:
        order = rng.permutation(len(positions))
        assignment[order] = np.arange(len(positions)) % folds
    else:
        offset = 0
        for key in sorted(set(keys)):
            idx = np.flatnonzero(keys == key)
            order = rng.permutation(idx)
            # continue the round-robin across classes so fold sizes stay even
            assignment[order] = (np.arange(len(order)) + offset) % folds
            offset += len(order)
    return np.sort(positions[assignment != fold]), np.sort(positions[assignment == fold])


def split_frame(
    frame: pd.DataFrame,
    cfg: SplitConfig,
    *,
    seed: int,
    task: str,
    target: str,
    validation: pd.DataFrame | None = None,
    test: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Split ``frame`` into train/validation/test. Given ``validation``/``test`` frames are used as they are."""
    rng = np.random.default_rng(seed)
    stratify = cfg.method in ("stratified", "kfold") and task == "classification"
    if cfg.method == "stratified" and task != "classification":
        log.info("stratified split asked for a regression target; splitting at random")

    if cfg.method == "kfold":
        if validation is not None:
            raise ShipyardError(
                "k-fold takes its validation fold from `source`; it cannot be combined with a validation_source",
                where="data.split.method",
            )
        test_fraction = 0.0 if test is not None else cfg.test
        rest, (test_pos,) = _carve(frame, [test_fraction], rng, _groups(frame, target, stratify))
        keys = frame[target].map(label_key).to_numpy()[rest] if stratify else None
        train_pos, val_pos = _kfold_parts(rest, keys, cfg.folds, cfg.fold, rng)
        parts = {"train": frame.iloc[train_pos], "validation": frame.iloc[val_pos]}
        parts["test"] = test if test is not None else frame.iloc[test_pos]
        log.info("k-fold split: fold %d of %d", cfg.fold, cfg.folds)
    else:
        fractions = [0.0 if validation is not None else cfg.validation, 0.0 if test is not None else cfg.test]
        train_pos, (val_pos, test_pos) = _carve(frame, fractions, rng, _groups(frame, target, stratify))
        parts = {
            "train": frame.iloc[train_pos],
            "validation": validation if validation is not None else frame.iloc[val_pos],
            "test": test if test is not None else frame.iloc[test_pos],
        }
    if parts["train"].empty:
        raise ShipyardError("the training split is empty", where="data.split", hint="the source has too few rows")
    _refuse_empty_held_out(parts, cfg, len(frame))
    log.info("split sizes: %s", {k: len(v) for k, v in parts.items()})
    if task == "classification":
        check_split_labels(parts, target)
    return parts


def _refuse_empty_held_out(parts: dict[str, pd.DataFrame], cfg: SplitConfig, rows: int) -> None:
    """A split asked for (fraction > 0, or k-fold's validation fold) that came out empty would leave the run
    without a validation or test score while still finishing with success: refuse it instead."""
    asked = {"validation": cfg.method == "kfold" or cfg.validation > 0, "test": cfg.test > 0}
    for name in ("validation", "test"):
        if asked[name] and parts[name].empty:
            fraction = f"{name} fraction {getattr(cfg, name)}" if cfg.method != "kfold" else f"{cfg.folds} folds"
            raise ShipyardError(
                f"the {name} split is empty: {rows} row(s) with a {fraction} leave no row to score the model on",
                where=f"data.split.{name}" if cfg.method != "kfold" else "data.split.folds",
                hint=f"add rows, give a data.{name}_source file, or set data.split.{name}: 0 to run without one",
            )


def check_split_labels(parts: dict[str, pd.DataFrame], target: str) -> None:
    """Every class in validation/test must occur in train; a model cannot predict a class it never saw."""
    train = set(parts["train"][target].map(label_key))
    for name in ("validation", "test"):
        frame = parts.get(name)
        if frame is None or frame.empty:
            continue
        unseen = sorted(set(frame[target].map(label_key)) - train)
        if unseen:
            first = frame[frame[target].map(label_key) == unseen[0]].index[0]
            raise ShipyardError(
                f"label {unseen[0]!r} appears in the {name} split but never in train"
                + (f" (also: {', '.join(map(repr, unseen[1:6]))})" if len(unseen) > 1 else ""),
                where=f"{frame.attrs.get('source', name)}, row {first}, column {target!r}",
                hint="check the label spelling across files, or drop these rows",
            )
