"""Connection and response hardening for the REST service: slow clients, security headers, public endpoints.

- **Slow clients.** uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but it has no
  deadline for the request *head*: a client that trickles header bytes (slowloris) holds a connection forever,
  and a byte now and then even cancels the keep-alive timer. :class:`HeadTimeoutH11Protocol` closes a
  connection that has not sent a whole request head ``head_timeout_s`` seconds after it opened or after its
  last response. A slow *body* is bounded by the app itself (the middleware reads it under a deadline, 408).
- **Security headers** on every response: ``X-Content-Type-Options: nosniff``, a ``Content-Security-Policy``
  that allows nothing (the API serves JSON only) except on the Swagger/ReDoc pages, which load their script
  and style from the jsDelivr CDN, and ``Referrer-Policy: no-referrer``.
- **Public endpoints.** ``/healthz`` and ``/readyz`` never need a key (load balancers probe them). ``docs``
  (``/docs``, ``/redoc``, ``/openapi.json``) and ``metrics`` (``/metrics``) are public unless the server is
  told otherwise (``ServeSettings.public_endpoints``, ``shipyard serve --public-endpoints none``); when not
  public they need a key of any scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

PUBLIC_ENDPOINT_PATHS: dict[str, frozenset[str]] = {
    "docs": frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}),
    "metrics": frozenset({"/metrics"}),
}

_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_DOCS_PAGES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# web pages under /ui: their own scripts, styles and API calls, nothing inline and nothing from elsewhere
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def private_paths(public: frozenset[str]) -> frozenset[str]:
    """The non-/v1 paths that need a key, given the public groups."""
    out: set[str] = set()
    for group, paths in PUBLIC_ENDPOINT_PATHS.items():
        if group not in public:
            out |= paths
    return frozenset(out)


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    csp = _DOCS_CSP if path in _DOCS_PAGES else _PAGE_CSP if path.startswith("/ui/") else _API_CSP
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", csp.encode("ascii")),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]


def is_json_content_type(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request says its body is JSON (``application/json`` or ``application/*+json``)."""
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    return False


class BodyDigest:
    """HMAC-SHA256 of a request body under a per-server secret: equal bodies match in the access log, but a
    logged digest cannot be brute-forced back to a (low-entropy, e.g. tabular) body without the secret."""

    def __init__(self, secret: bytes) -> None:
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def hexdigest(self) -> str:
        return self._mac.hexdigest()[:32]


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving each request head (see the module docstring).

    uvicorn builds the protocol itself (one per connection, in every worker), so the deadline is a class
    setting: :func:`use_head_timeout` sets it from ``ServeSettings.client_timeout_s`` in each server process.
    """

    head_timeout_s: ClassVar[float] = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()  # type: ignore[union-attr]
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self.transport.close()  # no request arrived in time: drop the connection without an answer

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()  # type: ignore[union-attr]
            self._head_timer = None
        super().connection_lost(exc)


def use_head_timeout(seconds: float) -> None:
    """Set the request-head deadline of every connection this process serves from now on."""
    HeadTimeoutH11Protocol.head_timeout_s = max(0.1, float(seconds))
