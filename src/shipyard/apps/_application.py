"""What an application is: a name, a one-line summary, and what it adds to shipyard (CLI commands, API routers,
web pages). Each part is optional; an application with none of them is only listed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.errors import ShipyardError

if TYPE_CHECKING:  # FastAPI is only needed once a deployment mounts an application, never for the CLI
    from fastapi import APIRouter

API_PREFIX = "/v1/apps"  # an application's routers are mounted under /v1/apps/<name>
PAGES_PREFIX = "/ui/apps"  # and its pages under /ui/apps/<name>
NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,39}")  # a URL path segment and a CLI command name alike
RESERVED_NAMES = frozenset({"list"})  # `shipyard app list` is taken


@dataclass(frozen=True)
class AppContext:
    """What a deployment hands an application when it asks for its routers and pages."""

    runs_root: Path = Path("runs")
    settings: Mapping[str, Any] = field(default_factory=dict)  # the deployment's settings for this application


RouterFactory = Callable[[AppContext], "list[APIRouter]"]


def _no_routers(context: AppContext) -> list[APIRouter]:
    return []


@dataclass(frozen=True)
class Application:
    """One application. ``routers`` and ``pages`` are factories, called once per mounted server (in each worker),
    so that an application imports FastAPI and builds its state only when it is served.

    - ``cli``: a Typer group, run as ``shipyard app <name> ...``;
    - ``routers(context)``: API routers, mounted under ``/v1/apps/<name>`` behind the server's API keys;
    - ``pages(context)``: web pages, mounted under ``/ui/apps/<name>``.
    """

    name: str
    summary: str
    cli: typer.Typer | None = None
    routers: RouterFactory = _no_routers
    pages: RouterFactory = _no_routers

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name) or self.name in RESERVED_NAMES:
            raise ShipyardError(
                f"bad application name {self.name!r}",
                where="Application.name",
                hint="lower-case letters, digits and '-', starting with a letter, at most 40; not 'list'",
            )

    def mounts(self, context: AppContext) -> list[tuple[str, APIRouter]]:
        """(prefix, router) pairs for the server: the routers under /v1/apps/<name>, the pages under /ui/apps/<name>."""
        return [(f"{API_PREFIX}/{self.name}", r) for r in self.routers(context)] + [
            (f"{PAGES_PREFIX}/{self.name}", p) for p in self.pages(context)
        ]

    def contributes(self) -> list[str]:
        """What the application adds, in words, for `shipyard app list`."""
        parts = ["cli"] if self.cli is not None else []
        parts += [
            kind for kind, factory in (("routers", self.routers), ("pages", self.pages)) if factory is not _no_routers
        ]
        return parts
