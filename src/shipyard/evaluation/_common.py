"""Small helpers shared by the report and the model card: value formatting and JSON-safe conversion."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def is_number(value: Any) -> bool:
    """A real number, but not a bool (which Python counts as an int)."""
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def format_value(value: Any) -> str:
    """A scalar as short, readable text (floats to at most 4 decimals, None as an em dash)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    return str(value)


def plain(value: Any) -> Any:
    """Anything config-like -> JSON/YAML-safe Python (tuples, numpy scalars, Paths, pydantic leftovers)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        # sets have no order; sort so the same config always serialises (and hashes) the same
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
