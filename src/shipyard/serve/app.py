"""The REST service: FastAPI app serving one or more trained models.

``create_app({"name": path, ...})`` reads every model's ``shipyard.json`` at once (so each model's routes and
request schema exist from the start, and a bad folder fails before the server starts), then loads the weights
once, in the background, at start-up: ``/healthz`` answers at once, ``/readyz`` only when every model has
loaded and passed a warm-up prediction.

Routes (all under ``/v1`` need ``Authorization: Bearer <key>`` unless auth is off):

- ``GET  /v1/models``                       every model: version, task, input schema, labels, metrics
- ``GET  /v1/models/{name}``                one model
- ``POST /v1/models/{name}/predict``        ``{"instance": {...}}`` or ``{"instances": [...]}``
- ``POST /v1/models/{name}/versions``       (admin) ``{"path": ...}``: load, warm up, then switch traffic
- ``GET  /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus), ``/openapi.json``, ``/docs``
  (``/metrics`` and the docs need a key unless listed in ``public_endpoints``; see :mod:`.limits`)

One pure-ASGI middleware does what must happen before a request reaches a route: refuse new work once shutdown
has begun (503), cap the body (413, by ``Content-Length`` and by counting the streamed bytes) and its read time
(408), check the key (401; 429 for an address with too many failed keys) and the caller's rate (429 +
``Retry-After``), refuse non-JSON bodies (415), add security headers, turn any unexpected exception into a 500
that logs no request value, and write the access-log line (method, path, status, latency, key name and an
HMAC of the body under a per-process secret; never the body). Errors are always
``{"error": {"type", "message", "field"}}``.
"""

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shipyard.errors import ShipyardError
from shipyard.serve.batching import BatcherClosed, MicroBatcher
from shipyard.serve.limits import (
    DEFAULT_PUBLIC_ENDPOINTS,
    BodyDigest,
    is_json_content_type,
    parse_public_endpoints,
    private_paths,
    security_headers,
)
from shipyard.serve.models import (
    NAME_RE,
    LoadedVersion,
    ModelNotFound,
    ModelSpec,
    instance_model,
    load_version,
    make_predictor,
    read_spec,
    request_model,
    response_model,
    same_schema,
)
from shipyard.serve.security import (
    ANONYMOUS,
    AuthFailureLimiter,
    KeyAuthenticator,
    Principal,
    RateLimiter,
    retry_after_header,
)

log = logging.getLogger(__name__)
access_log = logging.getLogger("shipyard.serve.access")

API_PREFIX = "/v1/"
UNGATED_PATHS = {"/healthz", "/metrics"}  # still answer while draining
_MODEL_PATH_RE = re.compile(r"^/v1/models/([^/]+)(?:/(predict|versions))?/?$")


# ============================================================================================ errors
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


_STATUS_KINDS = {
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


def _describe(err: dict[str, Any]) -> tuple[str, str, str | None]:
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


# ============================================================================================ state
class ServeMetrics:
    """Prometheus metrics in the app's own registry (so two apps in one process never clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "shipyard_requests",
            "HTTP requests by model, endpoint and status code",
            ["model", "endpoint", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_latency_seconds",
            "Request latency (whole request, as seen by the server)",
            ["model", "endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.batch_size = Histogram(
            "shipyard_batch_size",
            "Instances per model batch (after dynamic batching)",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.batch_requests = Histogram(
            "shipyard_batch_requests",
            "Requests merged into one model batch",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.inference = Histogram(
            "shipyard_inference_seconds",
            "Model time per batch",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.instances = Counter("shipyard_instances", "Instances predicted", ["model"], registry=r)
        self.errors = Counter("shipyard_errors", "Error responses by model and kind", ["model", "kind"], registry=r)
        self.model_version = Gauge("shipyard_model_version", "Version being served", ["model"], registry=r)
        self.model_ready = Gauge("shipyard_model_ready", "1 when the model is loaded and warm", ["model"], registry=r)
        self.inflight = Gauge("shipyard_inflight_requests", "Requests being handled", registry=r)


@dataclass
class ModelSlot:
    """A served model name: its fixed schema and the version now taking traffic."""

    name: str
    spec: ModelSpec  # the schema every version must keep
    source: str
    current: LoadedVersion | None = None
    batcher: MicroBatcher | None = None
    error: str | None = None
    next_version: int = 1
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class ServeConfig:
    auth: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_body_bytes: int = 1_000_000
    rate_limit_per_s: float = 100.0
    burst: int = 200
    key_cache_ttl_s: float = 30.0
    drain_timeout_s: float = 30.0
    body_timeout_s: float = 10.0
    auth_failures_per_s: float = 1.0
    auth_failure_burst: int = 20
    public_endpoints: frozenset[str] = frozenset(DEFAULT_PUBLIC_ENDPOINTS)


class ServeState:
    """Everything the routes and middleware share (``app.state.serve``)."""

    def __init__(self, slots: dict[str, ModelSlot], config: ServeConfig, key_store: Any, audit: Any) -> None:
        self.slots = slots
        self.config = config
        self.key_store = key_store
        self.audit = audit
        self.metrics = ServeMetrics()
        ttl = config.key_cache_ttl_s
        self.authenticator = KeyAuthenticator(key_store, ttl_s=ttl, negative_ttl_s=min(2.0, ttl)) if key_store else None
        self.limiter = RateLimiter(config.rate_limit_per_s, config.burst)
        self.auth_failures = AuthFailureLimiter(config.auth_failures_per_s, config.auth_failure_burst)
        self.private_paths = private_paths(config.public_endpoints)
        self.body_secret = secrets.token_bytes(32)  # keys the access log's body HMAC; never leaves the process
        self.draining = False
        self.inflight = 0
        self._idle: asyncio.Event | None = None
        self.loading_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ readiness and shutdown
    @property
    def ready(self) -> bool:
        return not self.draining and all(s.current is not None for s in self.slots.values())

    def begin_shutdown(self) -> None:
        """From now on new requests get 503; those in flight finish."""
        if not self.draining:
            log.info("shutdown begun: refusing new requests, %d in flight", self.inflight)
        self.draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.inflight == 0

    # ------------------------------------------------------------ versions
    def make_batcher(self, slot: ModelSlot, version: LoadedVersion) -> MicroBatcher:
        metrics = self.metrics
        name = slot.name

        def on_batch(n_instances: int, n_requests: int, seconds: float) -> None:
            metrics.batch_size.labels(name).observe(n_instances)
            metrics.batch_requests.labels(name).observe(n_requests)
            metrics.inference.labels(name).observe(seconds)

        return MicroBatcher(
            make_predictor(version.artifact),
            max_batch_size=self.config.max_batch_size,
            max_wait_ms=self.config.max_wait_ms,
            on_batch=on_batch,
            name=f"{name}-v{version.version}",
        )

    async def load_into(self, slot: ModelSlot, path: str) -> LoadedVersion:
        """Load ``path`` as the slot's next version, warm it up, then switch traffic to it."""
        version_no = slot.next_version
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(None, load_version, path, version_no)
        if not same_schema(slot.spec, loaded.spec):
            raise ShipyardError(
                "the new version takes different inputs (or solves another task) than the one being served",
                where=str(loaded.spec.path),
                hint="serve it under a new model name",
            )
        slot.next_version = version_no + 1
        batcher = self.make_batcher(slot, loaded)
        old = slot.batcher
        slot.current, slot.batcher, slot.error = loaded, batcher, None
        self.metrics.model_version.labels(slot.name).set(loaded.version)
        self.metrics.model_ready.labels(slot.name).set(1)
        if old is not None:  # let requests already queued on the old version finish there
            task = loop.create_task(old.close(timeout=self.config.drain_timeout_s))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return loaded

    async def load_all(self) -> None:
        for slot in self.slots.values():
            try:
                await self.load_into(slot, slot.source)
            except Exception as exc:
                slot.error = str(exc)
                log.error("model %r failed to load: %s", slot.name, exc)
        if self.ready:
            log.info("ready: serving %s", ", ".join(self.slots))


def get_state(request: Request) -> ServeState:
    return request.app.state.serve  # type: ignore[no-any-return]


def caller(request: Request) -> Principal:
    return request.scope.get("state", {}).get("principal") or ANONYMOUS  # type: ignore[no-any-return]


def require_scope(needed: str) -> Callable[[Request], Awaitable[Principal]]:
    async def check(request: Request) -> Principal:
        state = get_state(request)
        principal = caller(request)
        if state.config.auth and not principal.allows(needed):
            raise ApiError(
                403, "forbidden", f"this route needs a key with scope {needed!r}; yours is {principal.scope!r}"
            )
        return principal

    return check


# ============================================================================================ middleware
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
        n_bytes = 0

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_box["code"], status_box["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), *security_headers(path)]}
            await send(message)

        state.inflight += 1
        state.metrics.inflight.inc()
        try:
            response = None
            if state.draining and path not in UNGATED_PATHS:
                response = error_response(
                    503, "unavailable", "the server is shutting down", headers={"Retry-After": "1"}, scope=scope
                )
            body = b""
            if response is None and method in ("POST", "PUT", "PATCH"):
                body, response = await self._read_body(scope, receive)
                digest.update(body)
                n_bytes = len(body)
            if response is None and (path.startswith(API_PREFIX) or path in state.private_paths):
                response = await self._authenticate(scope)
            json_body = is_json_content_type(scope.get("headers", []))
            if response is None and method == "POST" and path.startswith(API_PREFIX) and not json_body:
                response = error_response(
                    415,
                    "unsupported_media_type",
                    "the body must be JSON: send 'Content-Type: application/json'",
                    field="Content-Type",
                    scope=scope,
                )
            if response is not None:
                await response(scope, receive, send_wrapper)
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
            self._record(scope, method, path, status_box["code"], time.perf_counter() - started, digest, n_bytes)

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> tuple[bytes, JSONResponse | None]:
        limit = self.state.config.max_body_bytes

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
        deadline = time.monotonic() + self.state.config.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return b"", error_response(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {self.state.config.body_timeout_s:g}s",
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

    async def _authenticate(self, scope: dict[str, Any]) -> JSONResponse | None:
        state = self.state
        rate_key: str
        if not state.config.auth:
            scope["state"]["principal"] = ANONYMOUS
            client = scope.get("client") or ("local", 0)
            rate_key = f"ip:{client[0]}"
        else:
            header = None
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            challenge = {"WWW-Authenticate": "Bearer"}
            if not header:
                return error_response(
                    401,
                    "unauthorized",
                    "missing API key: send 'Authorization: Bearer <key>'",
                    field="Authorization",
                    headers=challenge,
                    scope=scope,
                )
            kind, _, token = header.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                return error_response(
                    401,
                    "unauthorized",
                    "the Authorization header must be 'Bearer <key>'",
                    field="Authorization",
                    headers=challenge,
                    scope=scope,
                )
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
                return error_response(
                    401,
                    "unauthorized",
                    "invalid or revoked API key",
                    field="Authorization",
                    headers=challenge,
                    scope=scope,
                )
            scope["state"]["principal"] = principal
            rate_key = f"key:{principal.name}"
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
            kind = scope.get("state", {}).get("error_kind") or _STATUS_KINDS.get(code, f"http_{code}")
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


# ============================================================================================ app
class VersionRequest(BaseModel):
    model_config = {"extra": "forbid", "strict": True}
    path: str = Field(..., min_length=1, description="Run or model folder on the server to load as the next version.")


def _place(exc: BaseException) -> str:
    """Where an exception was raised (file:line), without its message: messages may quote request inputs."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, allow_nan=False), status_code=status, media_type="application/json")


def create_app(
    models: Mapping[str, str | Path],
    *,
    key_store_path: Path | None = None,
    auth: bool = True,
    max_batch_size: int = 64,
    max_wait_ms: float = 5.0,
    max_body_bytes: int = 1_000_000,
    rate_limit_per_s: float = 100.0,
    burst: int = 200,
    key_cache_ttl_s: float = 30.0,
    drain_timeout_s: float = 30.0,
    key_store: Any = None,
    body_timeout_s: float = 10.0,
    auth_failures_per_s: float = 1.0,
    auth_failure_burst: int = 20,
    public_endpoints: str | list[str] | tuple[str, ...] | None = None,
) -> FastAPI:
    """The service for ``models`` (name -> run or model folder). Weights load at start-up (the lifespan).

    ``rate_limit_per_s`` <= 0 turns rate limiting off. ``key_store`` may be passed instead of
    ``key_store_path`` (anything with ``verify(plaintext) -> record with .name, .scope | None``).
    ``public_endpoints``: which of ``docs`` and ``metrics`` need no key (default both; ``"none"``: neither).
    ``auth_failures_per_s`` <= 0 turns the per-address limit on failed keys off.
    """
    if not models:
        raise ShipyardError("give at least one model to serve", where="models")
    if max_batch_size < 1:
        raise ShipyardError("max_batch_size must be at least 1", where="max_batch_size")
    config = ServeConfig(
        auth=auth,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_bytes,
        rate_limit_per_s=rate_limit_per_s,
        burst=burst,
        key_cache_ttl_s=key_cache_ttl_s,
        drain_timeout_s=drain_timeout_s,
        body_timeout_s=body_timeout_s,
        auth_failures_per_s=auth_failures_per_s,
        auth_failure_burst=auth_failure_burst,
        public_endpoints=parse_public_endpoints(public_endpoints),
    )
    audit = None
    if auth:
        if key_store is None:
            if key_store_path is None:
                raise ShipyardError(
                    "authentication needs a key store", where="key_store_path", hint="or turn auth off (--no-auth)"
                )
            from shipyard.store.keys import KeyStore

            key_store = KeyStore(Path(key_store_path))
    else:
        key_store = None
        log.warning(
            "AUTHENTICATION IS OFF (--no-auth): anyone who can reach this server may predict AND load new model "
            "versions. Use only on a trusted network or for local testing."
        )
    if key_store_path is not None:
        from shipyard.store.audit import AuditLog

        audit = AuditLog(Path(key_store_path))

    slots: dict[str, ModelSlot] = {}
    for name, path in models.items():
        if not NAME_RE.fullmatch(name):
            raise ShipyardError(
                f"invalid model name {name!r}", where="models", hint="letters, digits, '_', '.', '-' (max 64)"
            )
        slots[name] = ModelSlot(name=name, spec=read_spec(path), source=str(path))

    state = ServeState(slots, config, key_store, audit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for slot in slots.values():
            slot.lock = asyncio.Lock()  # bind to this event loop
            state.metrics.model_ready.labels(slot.name).set(0)
        state.loading_task = asyncio.get_running_loop().create_task(state.load_all())
        try:
            yield
        finally:
            state.begin_shutdown()
            if not await state.wait_idle(config.drain_timeout_s):
                log.warning("shutdown: %d requests still in flight after %.0fs", state.inflight, config.drain_timeout_s)
            if state.loading_task and not state.loading_task.done():
                state.loading_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await state.loading_task
            for slot in slots.values():
                if slot.batcher is not None:
                    await slot.batcher.close(timeout=5.0)

    app = FastAPI(
        title="shipyard model service",
        version="1",
        description="Predictions from shipyard models. Every /v1 route needs `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    app.state.serve = state
    app.add_middleware(ServeMiddleware, state=state)
    bearer = [Depends(HTTPBearer(auto_error=False, description="An API key from `shipyard keys create`."))]
    security = bearer if auth else []

    # ------------------------------------------------------------ error handlers
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status,
            exc.type,
            exc.message,
            field=exc.field,
            headers=exc.headers,
            extra=exc.extra,
            scope=request.scope,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        kind, message, fld = _describe(errors[0]) if errors else ("validation_error", "invalid request", None)
        status = 400 if kind == "malformed_json" else 422
        details = []
        for err in errors[:20]:
            k, m, f = _describe(err)
            details.append({"type": k, "message": m, "field": f})
        extra = {"problems": details} if len(details) > 1 else None
        return error_response(status, kind, message, field=fld, extra=extra, scope=request.scope)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _STATUS_KINDS.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else kind.replace("_", " ")
        if exc.status_code == 404:
            message = f"no route {request.url.path}"
        return error_response(exc.status_code, kind, message, headers=exc.headers, scope=request.scope)

    # ------------------------------------------------------------ probes and metrics
    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: every model loaded and warm")
    async def readyz() -> Response:
        models_status = {
            name: {
                "ready": s.current is not None,
                "version": s.current.version if s.current else None,
                "error": s.error,
            }
            for name, s in slots.items()
        }
        if state.ready:
            return _json({"status": "ready", "models": models_status})
        why = "shutting down" if state.draining else "models not loaded yet"
        if any(s.error for s in slots.values()):
            why = "a model failed to load"
        return _json(
            {
                "status": "not_ready",
                "models": models_status,
                "error": {"type": "not_ready", "message": why, "field": None},
            },
            503,
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------ models
    def describe(slot: ModelSlot) -> dict[str, Any]:
        cur = slot.current
        spec = cur.spec if cur else slot.spec
        return {
            "name": slot.name,
            "version": cur.version if cur else None,
            "ready": cur is not None,
            "task": spec.task,
            "backend": spec.backend,
            "run_id": spec.meta.get("run_id"),
            "input_schema": {"features": spec.features},
            "target": spec.meta.get("target"),
            "labels": spec.labels,
            "metrics": spec.meta.get("metrics", {}),
            "loaded_at": cur.loaded_at if cur else None,
            "max_instances": config.max_batch_size,
            "predict_url": f"/v1/models/{slot.name}/predict",
            "error": slot.error,
        }

    @app.get("/v1/models", tags=["models"], summary="Served models", dependencies=security)
    async def list_models(_: Principal = Depends(require_scope("predict"))) -> dict[str, Any]:
        return {"models": [describe(s) for s in slots.values()]}

    @app.get("/v1/models/{name}", tags=["models"], summary="One served model", dependencies=security)
    async def get_model(name: str, _: Principal = Depends(require_scope("predict"))) -> dict[str, Any]:
        return describe(_slot(name))

    def _slot(name: str) -> ModelSlot:
        slot = slots.get(name)
        if slot is None:
            raise ApiError(
                404, "not_found", f"no model named {name!r}; served models: {', '.join(slots)}", field="name"
            )
        return slot

    for slot in slots.values():
        _add_predict_route(app, state, slot, security)

    @app.post(
        "/v1/models/{name}/predict", include_in_schema=False, dependencies=security
    )  # unknown names (known names have their own routes, registered first)
    async def predict_unknown(name: str, _: Principal = Depends(require_scope("predict"))) -> None:
        _slot(name)

    @app.post(
        "/v1/models/{name}/versions",
        tags=["models"],
        summary="Load a new version (admin): warm it up, then switch traffic to it",
        dependencies=security,
    )
    async def add_version(
        name: str, body: VersionRequest, principal: Principal = Depends(require_scope("admin"))
    ) -> dict[str, Any]:
        slot = _slot(name)
        async with slot.lock:
            previous = slot.current.version if slot.current else None
            try:
                loaded = await state.load_into(slot, body.path)
            except (ModelNotFound, OSError) as exc:  # one answer, so the route cannot probe the file system
                log.warning("model %r: no servable model at %s: %s", name, body.path, exc)
                raise ApiError(
                    422,
                    "load_failed",
                    "could not load the new version: no readable run or model folder at this path",
                    field="path",
                ) from None
            except ShipyardError as exc:
                log.warning("model %r: new version from %s refused: %s", name, body.path, exc)
                raise ApiError(422, "load_failed", f"could not load the new version: {exc}", field="path") from None
            except Exception as exc:
                log.error("model %r: loading %s failed: %s: %s", name, body.path, type(exc).__name__, exc)
                raise ApiError(
                    422, "load_failed", f"could not load the new version: {type(exc).__name__}: {exc}", field="path"
                ) from None
        if state.audit is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None,
                    lambda: state.audit.record(
                        "model.version",
                        principal.name,
                        f"model:{name}",
                        {"version": loaded.version, "previous": previous, "path": str(loaded.spec.path)},
                    ),
                )
            except Exception as exc:  # the switch happened; the audit failure is logged, not hidden
                log.error("audit log write failed for model %r version %d: %s", name, loaded.version, exc)
        return {
            "name": name,
            "version": loaded.version,
            "previous_version": previous,
            "path": str(loaded.spec.path),
            "backend": loaded.spec.backend,
            "load_seconds": loaded.load_seconds,
        }

    return app


def _add_predict_route(app: FastAPI, state: ServeState, slot: ModelSlot, security: list[Any]) -> None:
    """``POST /v1/models/<name>/predict`` with the model's own request schema."""
    name = slot.name
    Instance = instance_model(name, slot.spec.features, slot.spec.image_shape)
    Req = request_model(name, Instance, state.config.max_batch_size)
    Resp = response_model(name, slot.spec.task)
    metrics = state.metrics

    async def predict(body: Req, _: Principal = Depends(require_scope("predict"))) -> Response:  # type: ignore[valid-type]
        started = time.perf_counter()
        single = body.instance is not None  # type: ignore[attr-defined]
        rows = [body.instance] if single else body.instances  # type: ignore[attr-defined]
        records = [r.model_dump() for r in rows]
        for _attempt in range(3):
            batcher, current = slot.batcher, slot.current
            if batcher is None or current is None:
                raise ApiError(
                    503,
                    "unavailable",
                    f"model {name!r} is not loaded yet" + (f": {slot.error}" if slot.error else ""),
                    headers={"Retry-After": "1"},
                )
            try:
                results = await batcher.submit(records)
                break
            except BatcherClosed:
                continue  # a new version took over between reading slot.batcher and submitting; use it
            except ShipyardError as exc:
                raise ApiError(422, "invalid_input", f"the model could not use this input: {exc}") from None
        else:
            raise ApiError(
                503, "unavailable", f"model {name!r} is switching versions; retry", headers={"Retry-After": "1"}
            )
        for i, res in enumerate(results):
            if res.pop("non_finite", False):
                where = "instance" if single else f"instances.{i}"
                raise ApiError(
                    422,
                    "invalid_value",
                    "the model gave a non-finite output for this input (values far outside the training range?)",
                    field=where,
                )
        metrics.instances.labels(name).inc(len(records))
        out: dict[str, Any] = {"model": name, "version": current.version}
        if single:
            out["prediction"] = results[0]
        else:
            out["predictions"] = results
        out["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return _json(out)

    app.add_api_route(
        f"/v1/models/{name}/predict",
        predict,
        methods=["POST"],
        response_model=Resp,
        tags=["predict"],
        summary=f"Predict with {name}",
        description=(
            f'Send one row as `{{"instance": {{...}}}}` or up to {state.config.max_batch_size} rows as '
            f'`{{"instances": [...]}}`. Task: {slot.spec.task}.'
        ),
        dependencies=security,
        responses={
            401: {"description": "Missing or invalid API key"},
            413: {"description": "Body too large"},
            422: {"description": "Invalid input; the error names the field"},
            429: {"description": "Rate limit exceeded (see Retry-After)"},
            503: {"description": "Not loaded yet, or shutting down"},
        },
    )
