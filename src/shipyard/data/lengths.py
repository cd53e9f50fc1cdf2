"""Token-length statistics of a text column, as the data summary reports them for every text encoder."""

from __future__ import annotations

from typing import Any

import numpy as np


def length_summary(lengths: np.ndarray, max_length: int) -> dict[str, Any]:
    """Count, mean, p50/p95/max and the share cut at ``max_length`` of non-empty ``lengths`` (tokens per row)."""
    return {
        "count": len(lengths),
        "mean": round(float(lengths.mean()), 2),
        "p50": float(np.percentile(lengths, 50)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
        "max_length": max_length,
        "truncated_fraction": round(float((lengths > max_length).mean()), 4),
    }
