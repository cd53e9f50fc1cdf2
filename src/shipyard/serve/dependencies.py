"""Who may call what: API-key authentication, the caller's rate limit, and route scopes, in one place.

Authentication runs for every request under ``/v1/`` and for the private docs/metrics paths, *before* the body
is parsed: :class:`~shipyard.serve.middleware.ServeMiddleware` calls :func:`authenticate`, so a request without a
valid key never reaches JSON decoding or validation (401 comes before 400/415/422, and a flood of bad keys costs
a dictionary lookup). The verified caller is left in the request scope, where the route dependencies read it:
:func:`require_scope` (``Depends``) checks the scope a route needs, and :func:`route_dependencies` is the list
every ``/v1`` router (the models, the admin routes, and mounted applications) is included with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from shipyard.serve.errors import ApiError, error_response
from shipyard.serve.security import ANONYMOUS, Principal, retry_after_header
from shipyard.serve.state import ModelSlot, ServeState, get_state

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str, scope: dict[str, Any]) -> JSONResponse:
    return error_response(401, "unauthorized", message, field="Authorization", headers=_CHALLENGE, scope=scope)


def _bearer_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


async def _verify_key(state: ServeState, scope: dict[str, Any]) -> Principal | JSONResponse:
    """The caller of a request with auth on: its principal, or the 401/429 answer."""
    header = _bearer_token(scope)
    if not header:
        return _unauthorized("missing API key: send 'Authorization: Bearer <key>'", scope)
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return _unauthorized("the Authorization header must be 'Bearer <key>'", scope)
    assert state.authenticator is not None
    token = token.strip()
    address = str((scope.get("client") or ("-", 0))[0])
    principal = state.authenticator.cached(token)
    if principal is None:  # an unverified key costs a lookup (and maybe a hash): only so many failures
        blocked = state.auth_failures.blocked_for(address)
        if blocked > 0:
            return error_response(
                429,
                "too_many_failed_keys",
                "too many requests with an invalid API key from this address",
                field="Authorization",
                headers={"Retry-After": retry_after_header(blocked)},
                scope=scope,
            )
        principal = await state.authenticator.verify(token)
    if principal is None:
        state.auth_failures.record_failure(address)
        return _unauthorized("invalid or revoked API key", scope)
    return principal


async def authenticate(state: ServeState, scope: dict[str, Any]) -> JSONResponse | None:
    """Check the request's key (unless auth is off) and the caller's rate; None when it may go on.

    The caller (:class:`Principal`) is stored in ``scope["state"]["principal"]`` for :func:`caller`.
    """
    if not state.settings.auth:
        scope["state"]["principal"] = ANONYMOUS
        client = scope.get("client") or ("local", 0)
        rate_key = f"ip:{client[0]}"
    else:
        verified = await _verify_key(state, scope)
        if isinstance(verified, JSONResponse):
            return verified
        scope["state"]["principal"] = verified
        rate_key = f"key:{verified.name}"
    wait = state.limiter.take(rate_key)
    if wait > 0:
        return error_response(
            429,
            "rate_limited",
            f"rate limit of {state.limiter.rate:g} requests/s exceeded",
            headers={"Retry-After": retry_after_header(wait)},
            scope=scope,
        )
    return None


def caller(request: Request) -> Principal:
    return request.scope.get("state", {}).get("principal") or ANONYMOUS  # type: ignore[no-any-return]


def require_scope(needed: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, if its key has scope ``needed`` (admin keys have every scope), else 403."""

    async def check(request: Request) -> Principal:
        principal = caller(request)
        if get_state(request).settings.auth and not principal.allows(needed):
            raise ApiError(
                403, "forbidden", f"this route needs a key with scope {needed!r}; yours is {principal.scope!r}"
            )
        return principal

    return check


def route_dependencies(auth: bool) -> list[Any]:
    """Dependencies every ``/v1`` router is included with: the bearer scheme in the OpenAPI schema (the key
    itself is checked by :func:`authenticate`, before the body is read)."""
    if not auth:
        return []
    return [Depends(HTTPBearer(auto_error=False, description="An API key from `shipyard keys create`."))]


def find_slot(state: ServeState, name: str) -> ModelSlot:
    """The served model ``name``, else 404 listing the served ones."""
    slots = state.slots
    slot = slots.get(name)
    if slot is None:
        raise ApiError(404, "not_found", f"no model named {name!r}; served models: {', '.join(slots)}", field="name")
    return slot


def model_slot(request: Request, name: str) -> ModelSlot:
    """A dependency: the served model named in the path (:func:`find_slot`)."""
    return find_slot(get_state(request), name)
