"""The contract between the data layer and the models layer: the shape of one example and the outputs a task needs.

A neutral module below both, so the data layer describes its arrays and a model family builds for them without
either importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InputSpec:
    """What the data layer hands a builder: the shape of one example and how many outputs the task needs."""

    kind: str  # "tabular" | "image" | "text"
    n_features: int = 0  # tabular: width of the encoded feature vector
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width)
    n_outputs: int = 1  # classes for classification, 1 for regression
    task: str = "classification"

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> InputSpec:
        """The spec recorded in an artifact's shipyard.json."""
        inp = meta["input"]
        return cls(
            kind=inp["kind"],
            n_features=inp["n_features"],
            image_shape=tuple(inp["image_shape"]) if inp["image_shape"] else None,
            n_outputs=inp["n_outputs"],
            task=meta["task"],
        )


__all__ = ["InputSpec"]
