"""Where command output goes: results on stdout, notes and warnings on stderr."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(value: Any) -> None:
    """A command's JSON result, indented, on stdout (never wrapped or highlighted by rich)."""
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))
