"""One pure-ASGI middleware: what must happen to every request before (and after) it reaches a route.

In order: refuse new work once shutdown has begun (503), cap the body (413, by ``Content-Length`` and by
counting the streamed bytes) and its read time (408), check the key and the caller's rate
(:func:`shipyard.serve.dependencies.authenticate`: 401/429), refuse non-JSON bodies (415), add security headers,
turn any unexpected exception into a 500 that logs no request value, and write the metrics and the access-log
line (method, path, status, latency, key name and an HMAC of the body under a per-process secret; never the
body). It is pure ASGI, not ``BaseHTTPMiddleware``, so the body it read is replayed to the route unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from fastapi.responses import JSONResponse

from shipyard.serve.dependencies import authenticate
from shipyard.serve.errors import STATUS_KINDS, error_response
from shipyard.serve.limits import BodyDigest, is_json_content_type, security_headers
from shipyard.serve.state import ServeState

log = logging.getLogger(__name__)
access_log = logging.getLogger("shipyard.serve.access")

API_PREFIX = "/v1/"
UNGATED_PATHS = {"/healthz", "/metrics"}  # still answer while draining
_MODEL_PATH_RE = re.compile(r"^/v1/models/([^/]+)(?:/(predict|versions))?/?$")


def _place(exc: BaseException) -> str:
    """Where an exception was raised (file:line), without its message: messages may quote request inputs."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


class ServeMiddleware:
    """Shutdown gate, body cap, authentication, rate limit, metrics and the access log, for every request."""

    def __init__(self, app: Any, state: ServeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        started = time.perf_counter()
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        scope.setdefault("state", {})
        status_box = {"code": 500, "started": False}
        digest = BodyDigest(state.body_secret)
        body = b""

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_box["code"], status_box["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), *security_headers(path)]}
            await send(message)

        state.inflight += 1
        state.metrics.inflight.inc()
        try:
            body, refusal = await self._admit(scope, receive, method, path)
            digest.update(body)
            if refusal is not None:
                await refusal(scope, receive, send_wrapper)
                return
            sent = False

            async def replay() -> dict[str, Any]:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # type: ignore[no-any-return]

            await self.app(scope, replay, send_wrapper)
        except Exception as exc:
            # never re-raised: the server would log a traceback, whose locals and messages may quote the inputs
            log.error("internal error on %s %s: %s at %s", method, path, type(exc).__name__, _place(exc))
            if not status_box["started"]:
                failed = error_response(500, "internal", "internal server error", scope=scope)
                await failed(scope, receive, send_wrapper)
        finally:
            state.inflight -= 1
            state.metrics.inflight.dec()
            self._record(scope, method, path, status_box["code"], time.perf_counter() - started, digest, len(body))

    async def _admit(
        self, scope: dict[str, Any], receive: Any, method: str, path: str
    ) -> tuple[bytes, JSONResponse | None]:
        """(the body, None) when the request may reach its route, else (what was read, the refusal)."""
        state = self.state
        if state.draining and path not in UNGATED_PATHS:
            return b"", error_response(
                503, "unavailable", "the server is shutting down", headers={"Retry-After": "1"}, scope=scope
            )
        body = b""
        if method in ("POST", "PUT", "PATCH"):
            body, refusal = await self._read_body(scope, receive)
            if refusal is not None:
                return body, refusal
        if path.startswith(API_PREFIX) or path in state.private_paths:
            refusal = await authenticate(state, scope)
            if refusal is not None:
                return body, refusal
        if method == "POST" and path.startswith(API_PREFIX) and not is_json_content_type(scope.get("headers", [])):
            return body, error_response(
                415,
                "unsupported_media_type",
                "the body must be JSON: send 'Content-Type: application/json'",
                field="Content-Type",
                scope=scope,
            )
        return body, None

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> tuple[bytes, JSONResponse | None]:
        limit = self.state.settings.max_body_bytes
        timeout = self.state.settings.client_timeout_s

        def too_big() -> JSONResponse:
            return error_response(
                413, "payload_too_large", f"the request body is larger than {limit} bytes", scope=scope
            )

        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return b"", error_response(400, "bad_request", "invalid Content-Length header", scope=scope)
                if declared > limit:
                    return b"", too_big()
        chunks: list[bytes] = []
        total = 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return b"", error_response(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {timeout:g}s",
                    headers={"Connection": "close"},
                    scope=scope,
                )
            if message["type"] == "http.disconnect":
                return b"", error_response(400, "bad_request", "the client went away", scope=scope)
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                return b"", too_big()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _record(
        self, scope: dict[str, Any], method: str, path: str, code: int, seconds: float, digest: Any, n_bytes: int
    ) -> None:
        state = self.state
        match = _MODEL_PATH_RE.match(path)
        model = "-"
        endpoint = "other"
        if match:
            model = match.group(1) if match.group(1) in state.slots else "-"
            endpoint = match.group(2) or "model"
        elif path.rstrip("/") == "/v1/models":
            endpoint = "models"
        elif path in ("/healthz", "/readyz", "/metrics"):
            endpoint = path.strip("/")
        m = state.metrics
        m.requests.labels(model, endpoint, str(code)).inc()
        m.latency.labels(model, endpoint).observe(seconds)
        if code >= 400:
            kind = scope.get("state", {}).get("error_kind") or STATUS_KINDS.get(code, f"http_{code}")
            m.errors.labels(model, kind).inc()
        principal = scope.get("state", {}).get("principal")
        access_log.info(
            "%s %s %d %.1fms key=%s body_hmac=%s body_bytes=%d",
            method,
            path,
            code,
            seconds * 1000,
            principal.name if principal else "-",
            digest.hexdigest() if n_bytes else "-",
            n_bytes,
        )
