"""The plug-in point for text features: the :class:`TextEncoder` protocol and the registry that finds a saved
encoder's class again (by a registered name, or a ``module:qualname`` inside shipyard, never arbitrary code).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from shipyard.errors import ShipyardError

__all__ = ["TextEncoder", "encoder_class", "encoder_id", "register_text_encoder"]


@runtime_checkable
class TextEncoder(Protocol):
    """Plug-in point for text features (a tokenizer for a transformer family, e.g. ``shipyard.data.text``).

    ``transform`` returns model inputs such as ``{"input_ids": int64 (N, L), "attention_mask": int64 (N, L)}``.
    ``save``/``load`` use plain files in the given folder (no pickle). :meth:`Preprocessor.load` finds the class
    again by the id :func:`encoder_id` records: a name given to :func:`register_text_encoder`, or the class's
    ``module:qualname`` when it lives inside the ``shipyard`` package.
    """

    def fit(self, texts: list[str], *, rows: list[Any] | None = None, where: str | None = None) -> Any: ...

    def transform(
        self, texts: list[str], *, rows: list[Any] | None = None, where: str | None = None
    ) -> dict[str, np.ndarray]: ...

    def save(self, folder: Path) -> Any: ...

    @classmethod
    def load(cls, folder: Path) -> Any: ...


_TEXT_ENCODERS: dict[str, type] = {}


def register_text_encoder(name: str) -> Any:
    """Class decorator: make a TextEncoder loadable under ``name``."""

    def decorate(cls: type) -> type:
        _TEXT_ENCODERS[name] = cls
        cls.encoder_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def encoder_id(encoder: Any) -> str:
    registered = getattr(type(encoder), "encoder_name", None)
    if registered:
        return str(registered)
    return f"{type(encoder).__module__}:{type(encoder).__qualname__}"


def encoder_class(ident: str, where: str) -> type:
    if ident in _TEXT_ENCODERS:
        return _TEXT_ENCODERS[ident]
    module, _, qualname = ident.partition(":")
    # Only classes inside shipyard itself: a saved file must never make us import arbitrary code.
    if qualname and (module == "shipyard" or module.startswith("shipyard.")):
        try:
            return getattr(importlib.import_module(module), qualname)
        except (ImportError, AttributeError):
            pass
    raise ShipyardError(f"unknown text encoder {ident!r}", where=where)
