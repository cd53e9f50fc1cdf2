"""finmon: a financial-news sentiment monitor built on the platform's public pieces (see docs/finmon.md).

``APP`` is the application object the platform's app registry takes: ``name``, ``summary``, ``cli`` (a Typer
app: ``shipyard app finmon ...``), ``routers(context)`` (mounted under ``/v1/apps/finmon``) and
``pages(context)`` (the dashboard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer
from fastapi import APIRouter

from shipyard.apps.finmon.api import api_router
from shipyard.apps.finmon.cli import cli
from shipyard.apps.finmon.config import FinmonConfig, load_config
from shipyard.apps.finmon.pages import pages_router
from shipyard.apps.finmon.runner import Monitor

__all__ = ["APP", "FinmonConfig", "Monitor", "load_config"]


@dataclass(frozen=True)
class FinmonApp:
    name: str
    summary: str
    cli: typer.Typer

    def routers(self, context: Any) -> list[APIRouter]:
        return [api_router(context)]

    def pages(self, context: Any) -> list[APIRouter]:
        return [pages_router(context)]


APP = FinmonApp(
    name="finmon",
    summary="financial-news sentiment monitor: sources in, sentiment per company, alerts out",
    cli=cli,
)
