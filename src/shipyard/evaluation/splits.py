"""Which entries of a run's ``metrics.json`` are data splits: the one rule the report and the model card share.

``metrics.json`` holds one mapping per evaluated split (``train``, ``validation``, ``test``) beside mappings that
are not splits (``training``, ``privacy``, ``fairness``): those have sections of their own and must never show as
columns of a metrics table. A flat mapping of numbers (an older or hand-written file) is taken as test metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.evaluation._common import is_number

SPLITS = ("train", "validation", "test")


def metric_splits(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{split: metrics}`` for the splits in ``metrics``, in train / validation / test order."""
    if any(isinstance(metrics.get(k), Mapping) for k in SPLITS):
        return {k: dict(metrics[k]) for k in SPLITS if isinstance(metrics.get(k), Mapping)}
    if any(isinstance(v, Mapping) for v in metrics.values()):
        return {}  # only non-split sections (e.g. a run that evaluated nothing): no metrics table
    return {"test": dict(metrics)} if metrics else {}


def metric_names(splits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The rows of a metrics table: every name holding a number (or None) in any split, in first-seen order."""
    names: dict[str, None] = {}
    for values in splits.values():
        for key, value in values.items():
            if is_number(value) or value is None:
                names.setdefault(key, None)
    return list(names)
