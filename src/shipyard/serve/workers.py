"""Running the REST service under uvicorn: one process, or ``--workers N`` processes.

One process: :func:`serve` builds the app and runs it with :func:`run_draining` (so SIGTERM makes new requests
get 503 at once while those in flight finish). Several: uvicorn starts N worker processes that each import a
*factory* by name and call it; :func:`serve` hands them the models and the whole :class:`ServeSettings` as JSON
in one environment variable (:data:`WORKER_PLAN_ENV`), which :func:`app_from_env` validates again.

Applications (``ServeSettings.apps``). Serve sits below ``shipyard.apps`` and never imports it: the code that
turns application names into ``(prefix, router)`` pairs lives above serve and is passed in, as a callable
``resolve_apps(names) -> [(prefix, router), ...]``. In one process :func:`serve` calls it directly. Worker
processes cannot receive a callable, so the layer above gives :func:`serve` the import string of its own factory
(``worker_factory="shipyard.cli.serve:app_from_env"``), a function that calls
``shipyard.serve.workers.app_from_env(resolve_apps=<its resolver>)``; this module's default factory serves no
applications and refuses settings that name some.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from shipyard.config.errors import validate_section
from shipyard.config.serve import ServeSettings
from shipyard.errors import ShipyardError
from shipyard.serve.app import ExtraRouters, create_app
from shipyard.serve.limits import HeadTimeoutH11Protocol, use_head_timeout
from shipyard.serve.state import ServeState
from shipyard.store.keys import KeyStore

log = logging.getLogger(__name__)

WORKER_PLAN_ENV = "SHIPYARD_SERVE_CONFIG"  # how a multi-worker server hands models and settings to each worker
DEFAULT_WORKER_FACTORY = "shipyard.serve.workers:app_from_env"

AppsResolver = Callable[[Sequence[str]], ExtraRouters]  # application names -> (prefix, router) pairs
RunOne = Callable[[uvicorn.Config, ServeState], None]


class WorkerPlan(BaseModel):
    """What every worker process serves: the models (name -> folder) and the settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    models: dict[str, str]
    settings: ServeSettings


def _extra_routers(settings: ServeSettings, resolve_apps: AppsResolver | None) -> ExtraRouters:
    if not settings.apps:
        return ()
    if resolve_apps is None:
        raise ShipyardError(
            f"applications {', '.join(settings.apps)} were asked for, but nothing resolves application names here",
            where="serve.apps",
            hint="serve applications through the layer that knows them (shipyard.apps), which passes resolve_apps",
        )
    return resolve_apps(settings.apps)


def build_app(
    models: Mapping[str, str | Path], settings: ServeSettings, resolve_apps: AppsResolver | None = None
) -> FastAPI:
    """The app one server process runs (this process, or a worker)."""
    use_head_timeout(settings.client_timeout_s)
    return create_app(models, settings, extra_routers=_extra_routers(settings, resolve_apps))


def app_from_env(resolve_apps: AppsResolver | None = None) -> FastAPI:
    """App factory for multi-worker uvicorn: each worker builds its app from ``$SHIPYARD_SERVE_CONFIG``."""
    raw = os.environ.get(WORKER_PLAN_ENV)
    if not raw:
        raise ShipyardError(f"${WORKER_PLAN_ENV} is not set", where=WORKER_PLAN_ENV, hint="start with `shipyard serve`")
    plan = validate_section(WorkerPlan, json.loads(raw), where=WORKER_PLAN_ENV)  # settings checked again, here
    return build_app(plan.models, plan.settings, resolve_apps)


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """The uvicorn settings both modes share."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,  # our access log replaces uvicorn's
        "http": HeadTimeoutH11Protocol,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": int(settings.drain_timeout_s),
    }


def run_draining(config: uvicorn.Config, serve_state: ServeState) -> None:
    """Run uvicorn, telling the app the moment shutdown begins (SIGTERM/SIGINT) so new requests get 503."""

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            serve_state.begin_shutdown()
            super().handle_exit(sig, frame)

    DrainingServer(config).run()


def serve(
    models: Mapping[str, str | Path],
    settings: ServeSettings,
    *,
    resolve_apps: AppsResolver | None = None,
    worker_factory: str = DEFAULT_WORKER_FACTORY,
    run_one: RunOne = run_draining,
) -> None:
    """Serve ``models`` until stopped: in this process, or in ``settings.workers`` worker processes."""
    logging.getLogger("shipyard.serve.access").setLevel(logging.INFO if settings.access_log else logging.WARNING)
    use_head_timeout(settings.client_timeout_s)
    if settings.workers > 1:
        if settings.apps and worker_factory == DEFAULT_WORKER_FACTORY:
            _extra_routers(settings, None)  # raises: the default factory cannot resolve applications
        plan = WorkerPlan(models={k: str(v) for k, v in models.items()}, settings=settings)
        os.environ[WORKER_PLAN_ENV] = plan.model_dump_json()
        uvicorn.run(worker_factory, factory=True, workers=settings.workers, **uvicorn_options(settings))
        return
    app = build_app(models, settings, resolve_apps)
    run_one(uvicorn.Config(app, **uvicorn_options(settings)), app.state.serve)


def warn_if_no_live_key(settings: ServeSettings) -> None:
    """A server with auth on but no live key answers every /v1 request with 401: say so at start-up."""
    path = settings.key_store_path
    if settings.auth and path is not None and not any(not k.revoked for k in KeyStore(path).list()):
        log.warning("the key store %s holds no live API key: create one with `shipyard keys create`", path)
