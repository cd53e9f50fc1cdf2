"""The REST service: a FastAPI app serving one or more trained models (``create_app``).

``create_app({"name": path, ...}, settings)`` reads every model's ``shipyard.json`` at once (so each model's
routes and request schema exist from the start, and a bad folder fails before the server starts), then loads the
weights once, in the background, at start-up: ``/healthz`` answers at once, ``/readyz`` only when every model has
loaded and passed a warm-up prediction.

Routes (all under ``/v1`` need ``Authorization: Bearer <key>`` unless auth is off):

- ``GET  /v1/models``                       every model: version, task, input schema, labels, metrics
- ``GET  /v1/models/{name}``                one model
- ``POST /v1/models/{name}/predict``        ``{"instance": {...}}`` or ``{"instances": [...]}``
- ``POST /v1/models/{name}/versions``       (admin) ``{"path": ...}``: load, warm up, then switch traffic
- ``POST /v1/models/{name}/feedback``       feedback on a logged prediction (serve/loop.py; docs/loop.md)
- ``/ui``                                   the web dashboard (serve/ui/; cookie login with an API key)
- ``/v1/apps/<app>/...``                    applications' routers (``extra_routers``), behind the same key check
- ``/v1/models/{name}/recommend``, ``/events`` a recommender's routes (:mod:`.recommend`)
- ``GET  /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus), ``/openapi.json``, ``/docs``
  (``/metrics`` and the docs need a key unless listed in ``public_endpoints``; see :mod:`.limits`)

The pieces: :mod:`.state` (models, versions, the switcher), :mod:`.middleware` (shutdown gate, body cap, key
check, security headers, access log, 500s), :mod:`.dependencies` (authentication and scopes), :mod:`.errors`
(one error shape), :mod:`.routers` (the routes). Errors are always ``{"error": {"type", "message", "field"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from shipyard.config.serve import ServeSettings
from shipyard.errors import ShipyardError
from shipyard.serve.dependencies import require_scope, route_dependencies
from shipyard.serve.errors import install_error_handlers
from shipyard.serve.loop import ServeLoop, feedback_router, mount_dashboard
from shipyard.serve.middleware import API_PREFIX, ServeMiddleware
from shipyard.serve.models import NAME_RE, read_spec
from shipyard.serve.recommend import recommender_mounts, split_recommenders
from shipyard.serve.routers import probes, versions
from shipyard.serve.routers.models import models_router
from shipyard.serve.state import ModelSlot, ServeState
from shipyard.store.audit import AuditLog
from shipyard.store.keys import KeyStore

log = logging.getLogger(__name__)

ExtraRouters = Sequence[tuple[str, APIRouter]]  # (prefix under /v1/ or /ui/apps/, router): applications' routes
PAGES_PREFIX = "/ui/apps/"  # applications' pages: behind the dashboard's cookie login


def _key_store_and_audit(settings: ServeSettings, key_store: Any) -> tuple[Any, Any]:
    if settings.auth:
        if key_store is None:
            if settings.key_store_path is None:
                raise ShipyardError(
                    "authentication needs a key store", where="key_store_path", hint="or turn auth off (--no-auth)"
                )
            key_store = KeyStore(Path(settings.key_store_path))
    else:
        key_store = None
        log.warning(
            "AUTHENTICATION IS OFF (--no-auth): anyone who can reach this server may predict AND load new model "
            "versions. Use only on a trusted network or for local testing."
        )
    audit = AuditLog(Path(settings.key_store_path)) if settings.key_store_path is not None else None
    return key_store, audit


def _slots(models: Mapping[str, str | Path], *, apps: bool) -> dict[str, ModelSlot]:
    if not models and not apps:  # a deployment of applications alone (they load their own models) is fine
        raise ShipyardError("give at least one model (or application) to serve", where="models")
    slots: dict[str, ModelSlot] = {}
    for name, path in models.items():
        if not NAME_RE.fullmatch(name):
            raise ShipyardError(
                f"invalid model name {name!r}", where="models", hint="letters, digits, '_', '.', '-' (max 64)"
            )
        slots[name] = ModelSlot(name=name, spec=read_spec(path), source=str(path))
    return slots


def _lifespan(state: ServeState) -> Any:
    """Start loading every model when the server starts; on shutdown, drain requests, then stop the batchers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for slot in state.slots.values():
            slot.lock = asyncio.Lock()  # bind to this event loop
            state.metrics.model_ready.labels(slot.name).set(0)
        state.loading_task = asyncio.get_running_loop().create_task(state.load_all())
        await state.loop.start()
        try:
            yield
        finally:
            drain = state.settings.drain_timeout_s
            state.begin_shutdown()
            if not await state.wait_idle(drain):
                log.warning("shutdown: %d requests still in flight after %.0fs", state.inflight, drain)
            if state.loading_task and not state.loading_task.done():
                state.loading_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await state.loading_task
            await state.loop.stop()  # the prediction log's last batch is written
            for slot in state.slots.values():
                if slot.batcher is not None:
                    await slot.batcher.close(timeout=5.0)
            for batcher in state.extra_batchers:
                await batcher.close(timeout=5.0)

    return lifespan


def _mount_extra(app: FastAPI, extra_routers: ExtraRouters, security: list[Any], pages: Any = None) -> None:
    """Applications' routers, under ``/v1`` (so the middleware checks their key) and a predict-scope key; their
    pages under ``/ui/apps/<name>`` behind the dashboard's login (``pages``: its dependency; None: no dashboard)."""
    for prefix, router in extra_routers:
        if prefix.startswith(PAGES_PREFIX) and prefix.rstrip("/") != PAGES_PREFIX.rstrip("/"):
            if pages is None:
                raise ShipyardError(f"application pages ({prefix}) need the dashboard", where="extra_routers",
                                    hint="serve with the dashboard (--ui)")  # fmt: skip
            app.include_router(router, prefix=prefix.rstrip("/"), dependencies=[Depends(pages)])
            continue
        if not prefix.startswith(API_PREFIX) or prefix.rstrip("/") + "/" == API_PREFIX:
            raise ShipyardError(
                f"an application's routes must live under {API_PREFIX}<something> (got {prefix!r})",
                where="extra_routers",
                hint="e.g. /v1/apps/<name>",
            )
        app.include_router(
            router, prefix=prefix.rstrip("/"), dependencies=[*security, Depends(require_scope("predict"))]
        )


def create_app(
    models: Mapping[str, str | Path],
    settings: ServeSettings | None = None,
    *,
    key_store: Any = None,
    extra_routers: ExtraRouters = (),
    **overrides: Any,
) -> FastAPI:
    """The service for ``models`` (name -> run or model folder). Weights load at start-up (the lifespan).

    ``settings`` (default: :class:`ServeSettings`'s defaults) may be adjusted by keyword, validated the same way
    (``create_app(models, max_batch_size=8, key_store_path=db)``). ``key_store`` may be passed instead of
    ``settings.key_store_path`` (anything with ``verify(plaintext) -> record with .name, .scope | None``).
    ``extra_routers``: ``(prefix, router)`` pairs to mount, e.g. ``("/v1/apps/demo", router)``; they get the
    same key check as every ``/v1`` route and need a ``predict`` key (a route may ask for more with
    ``Depends(require_scope("admin"))``). Serve never resolves ``settings.apps`` itself: that is the caller's
    job, above serve (see :mod:`shipyard.serve.workers`).
    """
    base = settings.model_dump() if settings is not None else {}
    settings = ServeSettings.parse({**base, **overrides}) if overrides or settings is None else settings
    # recommenders (task: recommendation) answer /recommend and /events instead of /predict (serve/recommend.py)
    models, recommenders = split_recommenders(dict(models))
    slots = _slots(models, apps=bool(extra_routers) or bool(recommenders))
    key_store, audit = _key_store_and_audit(settings, key_store)
    state = ServeState(slots, settings, key_store, audit)
    # with predict's batching knobs and metrics; their batchers stop with the server
    recommender_routes = recommender_mounts(recommenders, settings, state.metrics)
    state.extra_batchers = [r.batcher for _, r in recommender_routes]  # type: ignore[attr-defined]

    app = FastAPI(
        title="shipyard model service",
        version="1",
        description="Predictions from shipyard models. Every /v1 route needs `Authorization: Bearer <key>`.",
        lifespan=_lifespan(state),
    )
    app.state.serve = state
    app.add_middleware(ServeMiddleware, state=state)
    install_error_handlers(app)
    security = route_dependencies(settings.auth)
    app.include_router(probes.router)
    app.include_router(models_router(state), prefix="/v1", dependencies=security)
    # before the predict models' /versions: a recommender's own POST .../versions must match first
    _mount_extra(app, recommender_routes, security)
    app.include_router(versions.router, prefix="/v1", dependencies=security)
    state.loop = ServeLoop(state, settings)
    app.include_router(feedback_router(state.loop), prefix="/v1", dependencies=security)
    pages = mount_dashboard(app, state) if settings.ui else None
    _mount_extra(app, extra_routers, security, pages)
    return app
