"""The `shipyard` command: ``shipyard.cli:main`` (the console script) and ``python -m shipyard.cli``.

One module per command group: train (train, validate, init, demo), predict (predict, evaluate, explain),
optimize, runs, audit, data, apps (`shipyard app ...`); errors holds the one error handler, output the consoles,
root assembles them into ``app``.

``app`` and ``main`` are resolved on first use (PEP 562) rather than imported here, because ``serve/cli.py`` still
imports the error handler from this package (through ``shipyard.cli_support``): importing the assembled command
here would import serve/cli.py back while it is half-loaded. Once serve's commands live in this package
(``cli/serve.py``), this can become a plain ``from shipyard.cli.root import app, main``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("shipyard.cli.root"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
