"""The customer-service assistant (issue #15): intents and answers from a retrieval run over the FAQ, slots,
an order-status tool, escalation to a human queue, redacted conversations, feedback for retraining, a chat page.

Kept light: the CLI imports this module on every command; FastAPI and the models load only when served.
"""

from __future__ import annotations

from typing import Any

from shipyard.apps import AppContext, Application
from shipyard.apps.support.cli import support_cli


def _routers(context: AppContext) -> list[Any]:
    from shipyard.apps.support.api import support_routers

    return support_routers(context)


def _pages(context: AppContext) -> list[Any]:
    from shipyard.apps.support.pages import support_pages

    return support_pages(context)


APP = Application(
    name="support",
    summary="Customer-service assistant: FAQ search, intents, order status, escalation to people.",
    cli=support_cli,
    routers=_routers,
    pages=_pages,
)
