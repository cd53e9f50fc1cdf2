"""Differences between two job configs, as `key.path: old -> new` lines (used to refuse resuming a changed job)."""

from __future__ import annotations

import json
from typing import Any

# Keys that say where a run is written or how it is executed, not what is learnt: resuming may change them.
NOT_LEARNT = frozenset(
    {
        "name",
        "output",
        "training.device",
        "training.num_threads",
        "training.log_every_steps",
        "training.keep_checkpoints",
    }
)

_MISSING = object()


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False, default=str)


def config_differences(old: Any, new: Any, *, ignore: frozenset[str] = NOT_LEARNT, prefix: str = "") -> list[str]:
    """Every leaf that differs between two plain (JSON-like) configs, as ``path: old -> new``, in key order."""
    if prefix in ignore:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(config_differences(old.get(key, _MISSING), new.get(key, _MISSING), ignore=ignore, prefix=path))
        return out
    if old == new and type(old) is type(new):
        return []
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new))
    if numbers and old == new:
        return []  # 1 and 1.0 are the same setting
    return [f"{prefix}: {_show(old)} -> {_show(new)}"]
