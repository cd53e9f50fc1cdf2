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
  told otherwise (``shipyard serve --public-endpoints none``); when not public they need a key of any scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

from uvicorn.protocols.http.h11_impl import H11Protocol

PUBLIC_ENDPOINT_PATHS: dict[str, frozenset[str]] = {
    "docs": frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}),
    "metrics": frozenset({"/metrics"}),
}
DEFAULT_PUBLIC_ENDPOINTS: tuple[str, ...] = ("docs", "metrics")

_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_DOCS_PAGES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


def parse_public_endpoints(value: str | list[str] | tuple[str, ...] | None) -> frozenset[str]:
    """``"docs,metrics"``, ``"none"`` or a list -> the set of endpoint groups that need no key."""
    from shipyard.errors import ShipyardError

    if value is None:
        return frozenset(DEFAULT_PUBLIC_ENDPOINTS)
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {v.strip().lower() for v in items if v.strip()} - {"none"}
    unknown = names - PUBLIC_ENDPOINT_PATHS.keys()
    if unknown:
        raise ShipyardError(
            f"unknown public endpoint group(s): {', '.join(sorted(unknown))}",
            where="public_endpoints",
            hint=f"use a comma-separated subset of {', '.join(PUBLIC_ENDPOINT_PATHS)}, or 'none'",
        )
    return frozenset(names)


def private_paths(public: frozenset[str]) -> frozenset[str]:
    """The non-/v1 paths that need a key, given the public groups."""
    out: set[str] = set()
    for group, paths in PUBLIC_ENDPOINT_PATHS.items():
        if group not in public:
            out |= paths
    return frozenset(out)


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    csp = _DOCS_CSP if path in _DOCS_PAGES else _API_CSP
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


HEAD_TIMEOUT_ENV = "SHIPYARD_SERVE_HEAD_TIMEOUT_S"  # an environment variable, so every worker process sees it


def head_timeout_s() -> float:
    try:
        return max(0.1, float(os.environ.get(HEAD_TIMEOUT_ENV, "10")))
    except ValueError:
        return 10.0


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving each request head (see the module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()  # type: ignore[union-attr]
        self._head_timer = self.loop.call_later(head_timeout_s(), self._head_timed_out)

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
