"""Who is looking at the dashboard: an API key, given once on the login page, kept in an HttpOnly cookie.

The cookie holds the key itself (so revoking the key ends every session at once) and is ``HttpOnly`` (no script
can read it), ``SameSite=Strict`` (no other site's page can make the browser send it, which is what keeps the
dashboard's POST forms from being triggered by another site) and ``Secure`` when the request came over HTTPS.
Every request verifies it through the server's own key check; the scope rules are the API's (``predict`` may look
and label, ``admin`` may also promote and roll back).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse

COOKIE = "shipyard_ui_key"
MAX_AGE_S = 8 * 3600


class LoginRequired(Exception):
    """Raised by :func:`principal_of`; the router turns it into a redirect to the login page."""


class Forbidden(Exception):
    def __init__(self, needed: str) -> None:
        super().__init__(needed)
        self.needed = needed


async def principal_of(request: Request, verify: Callable[[str], Awaitable[Any]], auth: bool, anonymous: Any) -> Any:
    if not auth:
        return anonymous
    key = request.cookies.get(COOKIE)
    if not key:
        raise LoginRequired()
    principal = await verify(key)
    if principal is None:
        raise LoginRequired()
    return principal


def require(principal: Any, needed: str) -> None:
    if not principal.allows(needed):
        raise Forbidden(needed)


def login_response(request: Request, key: str, target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


def logout_response() -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
