"""finmon: a financial-news sentiment monitor built on the platform's public pieces (see docs/finmon.md).

``APP`` is the application object the platform's app registry takes: ``name``, ``summary``, ``cli`` (a Typer
app: ``shipyard app finmon ...``), ``routers(context)`` (mounted under ``/v1/apps/finmon``) and
``pages(context)`` (the dashboard).
"""

from __future__ import annotations

from typing import Any

from shipyard.apps._application import AppContext, Application
from shipyard.apps.finmon.cli import cli
from shipyard.apps.finmon.config import FinmonConfig, load_config

__all__ = ["APP", "FinmonConfig", "load_config"]


# the API and pages import FastAPI and the store: built only when a server mounts them, so that loading the
# application for `shipyard app ...` stays cheap
def _routers(context: AppContext) -> list[Any]:
    from shipyard.apps.finmon.api import api_router

    return [api_router(context)]


def _pages(context: AppContext) -> list[Any]:
    from shipyard.apps.finmon.pages import pages_router

    return [pages_router(context)]


APP = Application(
    name="finmon",
    summary="financial-news sentiment monitor: sources in, sentiment per company, alerts out",
    cli=cli,
    routers=_routers,
    pages=_pages,
)
