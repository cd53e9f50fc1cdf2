"""Error responses of the REST service: always ``{"error": {"type", "message", "field"}}``.

:class:`ApiError` is what routes and dependencies raise; :func:`install_error_handlers` turns it, FastAPI's
validation errors and Starlette's HTTP errors into that one shape (with the offending field named), and records
the error's kind in the request scope for the ``shipyard_errors`` metric.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """An error response: HTTP status, a machine-readable type, a message and the offending field."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.field = field
        self.headers = headers
        self.extra = extra or {}


def error_response(
    status: int,
    type: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> JSONResponse:
    if scope is not None:
        scope.setdefault("state", {})["error_kind"] = type
    body = {"error": {"type": type, "message": message, "field": field, **(extra or {})}}
    return JSONResponse(body, status_code=status, headers=headers)


STATUS_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}

_PYDANTIC_KINDS = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "json_invalid": "malformed_json",
    "float_type": "wrong_type",
    "string_type": "wrong_type",
    "list_type": "wrong_type",
    "model_type": "wrong_type",
    "dict_type": "wrong_type",
    "model_attributes_type": "wrong_type",
    "finite_number": "invalid_value",
    "too_short": "invalid_value",
    "too_long": "too_many_instances",
}


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or None


def describe_validation_error(err: dict[str, Any]) -> tuple[str, str, str | None]:
    """(kind, message, field) for one pydantic / FastAPI validation error."""
    kind = _PYDANTIC_KINDS.get(err.get("type", ""), "invalid_value")
    fld = _field_of(err.get("loc", ()))
    msg = str(err.get("msg", "invalid value"))
    if kind == "malformed_json":
        ctx = err.get("ctx") or {}
        return kind, f"the body is not valid JSON ({ctx.get('error', msg)})", None
    if kind == "missing_field":
        return kind, (f"missing field {fld!r}" if fld else "the request body is missing"), fld
    if kind == "unknown_field":
        return kind, f"unknown field {fld!r}", fld
    if kind == "too_many_instances" and fld == "instances":
        return kind, f"{fld}: {msg}", fld
    if kind == "too_many_instances":
        kind = "invalid_value"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return kind, (f"{fld}: {msg}" if fld else msg), fld


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status, exc.type, exc.message, field=exc.field, headers=exc.headers, extra=exc.extra, scope=request.scope
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    kind, message, fld = (
        describe_validation_error(errors[0]) if errors else ("validation_error", "invalid request", None)
    )
    status = 400 if kind == "malformed_json" else 422
    details = []
    for err in errors[:20]:
        k, m, f = describe_validation_error(err)
        details.append({"type": k, "message": m, "field": f})
    extra = {"problems": details} if len(details) > 1 else None
    return error_response(status, kind, message, field=fld, extra=extra, scope=request.scope)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = STATUS_KINDS.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else kind.replace("_", " ")
    if exc.status_code == 404:
        message = f"no route {request.url.path}"
    return error_response(exc.status_code, kind, message, headers=exc.headers, scope=request.scope)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
