"""The shop front's API router and page.

The API is the served recommender's own routes (`shipyard.serve.recommend`: /recommend, /events, /items/{id})
for the run named by the application's ``run`` setting (or ``$SHIPYARD_RECOMMEND_RUN``), plus ``/users``: a few
user ids to pick from. The page is one HTML file with plain JavaScript calling that API; a deployment with
authentication asks for an API key once and keeps it for the browser session.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from shipyard.apps._application import AppContext
from shipyard.errors import ShipyardError

RUN_ENV = "SHIPYARD_RECOMMEND_RUN"
ASSETS = ("shop.html", "shop.js", "shop.css")


def _run(context: AppContext) -> Path:
    run = context.settings.get("run") or os.environ.get(RUN_ENV)
    if not run:
        raise ShipyardError(
            "the recommend application needs the run folder of a trained recommender",
            where="apps.recommend.run",
            hint=f"set the application's `run` setting or ${RUN_ENV}",
        )
    return Path(run)


def api_routers(context: AppContext) -> list[Any]:
    from shipyard.serve.recommend import recommender_router  # FastAPI: only when served

    router = recommender_router("recommend", _run(context))

    @router.get("/users")
    def users(limit: int = 50) -> dict[str, Any]:
        return {"users": router.served.live.user_ids(limit)}  # type: ignore[attr-defined]  # the current version

    return [router]


def page_routers(context: AppContext) -> list[Any]:
    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse, Response

    files = {name: resources.files(__package__).joinpath(name).read_text(encoding="utf-8") for name in ASSETS}
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def shop() -> str:
        return files["shop.html"]

    @router.get("/shop.js")
    def script() -> Response:  # a file of its own: the page's CSP allows no inline script
        return Response(files["shop.js"], media_type="text/javascript")

    @router.get("/shop.css")
    def style() -> Response:
        return Response(files["shop.css"], media_type="text/css")

    return [router]
