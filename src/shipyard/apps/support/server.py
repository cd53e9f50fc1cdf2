"""`shipyard app support serve`: the model service (the retrieval model's /search), the assistant's API under
/v1/apps/support and its pages under /ui/apps/support, in one process.

The pages get their own small ASGI app (their own content security policy: the model service's forbids every
script); a dispatcher sends /ui/apps/support/... there and everything else, lifespan included, to the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.apps import PAGES_PREFIX, AppContext
from shipyard.apps.support.api import support_routers
from shipyard.apps.support.assistant import Assistant
from shipyard.apps.support.config import SupportConfig, resolve
from shipyard.apps.support.pages import support_pages

PAGES = f"{PAGES_PREFIX}/support"


def build_app(
    cfg: SupportConfig, base: Path, config_path: Path, *, assistant: Assistant | None = None, **settings: Any
) -> Any:
    """The combined ASGI app (``settings`` go to the model service's ServeSettings)."""
    from fastapi import FastAPI

    from shipyard.serve.app import create_app

    context = AppContext(settings={"config": str(config_path)})
    bot = assistant or Assistant(cfg, base)
    routers = [(f"/v1/apps/{cfg.name}", r) for r in support_routers(context, bot)]
    service = create_app({"faq": resolve(base, cfg.retrieval_run)}, extra_routers=routers, **settings)
    pages = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    for router in support_pages(context):
        pages.include_router(router, prefix=PAGES)

    async def dispatch(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        target = pages if path == PAGES or path.startswith(PAGES + "/") else service
        await target(scope, receive, send)

    dispatch.service = service  # type: ignore[attr-defined]  # tests reach the service's state through it
    return dispatch
