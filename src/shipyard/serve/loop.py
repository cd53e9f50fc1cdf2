"""The continuous-learning loop inside the server: prediction ids, the prediction log, shadow challengers,
feedback, the scheduled drift check and the dashboard's context.

- Every prediction gets a ``prediction_id`` (uuid4 hex). With ``log_predictions`` set for the model (or ``"*"``),
  a sample of them is logged (redacted, batched, crash-safe: :mod:`shipyard.loop.predlog`), one log per served
  version, so each row names the version that answered.
- ``shadow: {model: folder}`` loads a challenger that scores the same inputs on live traffic, off the request
  path (after the answer is sent); its outputs are logged beside the champion's, never returned.
- ``POST /v1/models/{name}/feedback`` (:func:`feedback_router`) stores one answer about a logged prediction.
- A background task runs the drift check every ``loop.monitor.interval_s`` for every logged model (skipped when
  another worker process checked within the interval), publishing to the server's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from shipyard.artifact import Artifact
from shipyard.config.loop import LogPredictionsConfig
from shipyard.config.serve import ServeSettings
from shipyard.errors import ShipyardError
from shipyard.loop.alerts import AlertSink
from shipyard.loop.feedback import FeedbackError, FeedbackItem, record_feedback
from shipyard.loop.monitor import run_check
from shipyard.loop.predlog import PredictionLog, new_prediction_id
from shipyard.loop.store import LoopStore
from shipyard.serve.dependencies import find_slot, require_scope
from shipyard.serve.errors import ApiError
from shipyard.serve.routers.models import predict_records
from shipyard.serve.security import ANONYMOUS, Principal
from shipyard.serve.state import ServeState, get_state
from shipyard.serve.ui import ModelView, UIContext, exception_handlers, mount_static, session, ui_router

logger = logging.getLogger(__name__)


class ServeLoop:
    """One per app (``state.loop``); inert (ids only) when nothing is logged, shadowed or shown."""

    def __init__(self, state: Any, settings: ServeSettings) -> None:
        self.state = state
        self.settings = settings
        self.loop_settings = settings.loop
        self.configs: dict[str, LogPredictionsConfig] = dict(settings.log_predictions)
        self.store: LoopStore | None = None
        if self.configs or settings.shadow or settings.ui:
            self.store = LoopStore.open(self.runs_root, self.loop_settings.database_url)
        self.sink = AlertSink(
            state.metrics.registry,
            webhook_url=str(self.loop_settings.monitor.webhook_url) if self.loop_settings.monitor.webhook_url else None,
            timeout_s=self.loop_settings.monitor.webhook_timeout_s,
        )
        self._logs: dict[tuple[str, int], PredictionLog] = {}
        self._shadows: dict[str, Any] = {}  # model -> Artifact of the challenger
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scheduler: asyncio.Task[None] | None = None

    @property
    def runs_root(self) -> Path:
        """Where the run store lives: beside the key store (``<runs_root>/shipyard.db``), else ./runs."""
        if self.settings.key_store_path is not None:
            return Path(self.settings.key_store_path).parent
        return Path("runs")  # --no-auth: no key store; the loop store goes where `shipyard train` puts runs

    def config_for(self, model: str) -> LogPredictionsConfig | None:
        return self.configs.get(model) or self.configs.get("*")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        for model, path in self.settings.shadow.items():
            try:
                self._shadows[model] = await run_in_threadpool(Artifact.load, path)
                logger.info("model %r: shadow challenger %s scores live traffic (never answers)", model, path)
            except ShipyardError as exc:  # the champion serves on; the shadow is what is missing
                logger.error("model %r: shadow challenger %s not loaded: %s", model, path, exc)
        if self.store is not None and self.configs:
            self._scheduler = asyncio.get_running_loop().create_task(self._scheduled_checks())

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._scheduler
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for plog in self._logs.values():
            await run_in_threadpool(plog.close)  # a clean shutdown loses no logged prediction

    def _log(self, model: str, version: int, path: str) -> PredictionLog | None:
        config = self.config_for(model)
        if config is None or self.store is None:
            return None
        key = (model, version)
        plog = self._logs.get(key)
        if plog is None:
            plog = PredictionLog(self.store, model=model, version=version, model_path=path, config=config).start()
            self._logs[key] = plog
        return plog

    # ------------------------------------------------------------------ the request path
    def after_predict(
        self, model: str, version: int, path: str, records: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> list[str]:
        """Give every answer an id; log the sampled ones (with the shadow's outputs, after the answer is sent)."""
        plog = self._log(model, version, path)
        if plog is None:
            ids = [new_prediction_id() for _ in results]
        elif model in self._shadows:
            ids = [new_prediction_id() for _ in results]
            task = asyncio.get_running_loop().create_task(self._shadow_then_log(model, plog, records, results, ids))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            ids = plog.log(records, results)
        for result, pid in zip(results, ids, strict=True):
            result["prediction_id"] = pid
        return ids

    async def _shadow_then_log(
        self, model: str, plog: PredictionLog, records: list[dict], results: list[dict], ids: list[str]
    ) -> None:
        shadow = None
        try:
            shadow = await run_in_threadpool(self._shadows[model].predict_records, records)
        except Exception as exc:  # a broken challenger must never disturb the champion's log
            logger.warning("model %r: the shadow challenger failed on a batch: %s", model, exc)
        plog.log_with_ids(ids, records, [{k: v for k, v in r.items() if k != "prediction_id"} for r in results], shadow)

    def flush(self, model: str) -> None:
        """Write what waits for ``model`` (feedback may name a prediction still in an unflushed batch)."""
        for (name, _), plog in list(self._logs.items()):
            if name == model and plog.pending:
                plog.flush()

    # ------------------------------------------------------------------ scheduled checks
    async def _scheduled_checks(self) -> None:
        monitor = self.loop_settings.monitor
        while True:
            await asyncio.sleep(monitor.interval_s)
            for model in list(self.state.slots):
                if self.config_for(model) is None:
                    continue
                try:
                    await run_in_threadpool(self.check_if_due, model)
                except ShipyardError as exc:
                    logger.info("drift check of %r skipped: %s", model, exc.message)
                except Exception as exc:  # the server keeps serving whatever a check does
                    logger.error("drift check of %r failed: %s: %s", model, type(exc).__name__, exc)

    def check_if_due(self, model: str, *, actor: str = "scheduler") -> Any:
        assert self.store is not None
        monitor = self.loop_settings.monitor
        last = self.store.list_events(model, ("drift_check",), limit=1)
        if last and time.time() - float(last[0]["at"]) < monitor.interval_s * 0.9:
            return None  # another worker process checked this interval
        self.flush(model)
        slot = self.state.slots[model]
        path = str(slot.current.spec.path) if slot.current else None
        return run_check(
            self.store, model, window_s=monitor.window_s, thresholds=monitor.thresholds, sink=self.sink,
            actor=actor, model_path=path,
        )  # fmt: skip


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prediction_id: str = Field(min_length=1, max_length=64)
    label: str | None = Field(default=None, max_length=500)
    value: float | None = None
    rating: int | None = None
    thumbs: str | None = Field(default=None, max_length=8)
    correction: str | float | None = None


def feedback_router(loop: ServeLoop) -> APIRouter:
    """``POST /models/{name}/feedback`` (mounted under ``/v1``): 201, or 404 / 409 / 422 naming the problem."""
    router = APIRouter(prefix="/models", tags=["feedback"])

    @router.post("/{name}/feedback", status_code=201, summary="Feedback on a logged prediction")
    async def feedback(
        name: str,
        body: FeedbackRequest,
        principal: Principal = Depends(require_scope("predict")),
        state: ServeState = Depends(get_state),
    ) -> dict[str, Any]:
        find_slot(state, name)
        if loop.store is None or loop.config_for(name) is None:
            raise ApiError(404, "not_logged", f"model {name!r} does not log predictions, so it takes no feedback")
        item = FeedbackItem(**body.model_dump())
        try:
            await run_in_threadpool(loop.flush, name)
            row = await run_in_threadpool(
                lambda: record_feedback(loop.store, item, actor=principal.name, source="api", model=name)
            )
        except FeedbackError as exc:
            kind = {404: "unknown_prediction", 409: "duplicate_feedback"}.get(exc.status, "invalid_feedback")
            raise ApiError(
                exc.status, kind, exc.message, field="prediction_id" if exc.status != 422 else None
            ) from None
        return {"prediction_id": item.prediction_id, "kind": row["kind"], "correct": row["correct"]}

    return router


# ---------------------------------------------------------------------------------------------- the dashboard
def ui_context(state: ServeState) -> Any:
    """What the dashboard's pages need from this server (serve/ui/routes.py ``UIContext``)."""
    loop: ServeLoop = state.loop

    def models() -> list[ModelView]:
        views = []
        for slot in state.slots.values():
            spec = slot.current.spec if slot.current else slot.spec
            path = str(spec.path)
            version = slot.current.version if slot.current else None
            views.append(ModelView(slot.name, version, path, spec.task, spec.features, spec.labels))
        return views

    async def verify(key: str) -> Principal | None:
        return await state.authenticator.verify(key) if state.authenticator is not None else None

    async def predict(name: str, record: dict[str, Any]) -> dict[str, Any]:
        slot = state.slots[name]
        try:
            results, current = await predict_records(slot, [record])
        except ApiError as exc:
            raise ShipyardError(exc.message) from None
        loop.after_predict(name, current.version, str(current.spec.path), [record], results)
        return {"version": current.version, **results[0]}

    async def switch(name: str, path: str) -> dict[str, Any]:
        slot = state.slots[name]
        async with slot.lock:
            try:
                loaded = await state.load_into(slot, path)
            except ShipyardError:
                raise
            except Exception as exc:  # a folder that is not a model: the champion keeps serving
                raise ShipyardError(f"could not load {path}: {type(exc).__name__}: {exc}") from None
        if state.audit is not None:
            details = {"version": loaded.version, "path": str(loaded.spec.path), "via": "dashboard"}
            await run_in_threadpool(lambda: state.audit.record("model.version", "dashboard", f"model:{name}", details))
        return {"version": loaded.version, "path": str(loaded.spec.path)}

    return UIContext(
        store=loop.store,
        models=models,
        verify=verify,
        anonymous=ANONYMOUS,
        auth=state.settings.auth,
        runs_root=loop.runs_root,
        predict=predict,
        switch=switch,
        settings=loop.loop_settings,
        sink=loop.sink,
    )


def mount_dashboard(app: Any, state: ServeState) -> Any:
    """``/ui``: the pages, their static files and the login redirects. Returns the login dependency that
    applications' pages (``/ui/apps/<name>``) are mounted behind."""
    ctx = ui_context(state)
    app.include_router(ui_router(ctx))
    mount_static(app)
    for exc, handler in exception_handlers().items():
        app.add_exception_handler(exc, handler)

    async def logged_in(request: Request) -> Any:
        return await session.principal_of(request, ctx.verify, ctx.auth, ctx.anonymous)

    return logged_in
