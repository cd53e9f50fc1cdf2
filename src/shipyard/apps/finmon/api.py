"""The monitor's HTTP API (mounted by serve under ``/v1/apps/finmon``): batched ingest, entities, an entity's time
series and documents, the alert feed, and analysts' sentiment corrections (the feedback loop)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel

from shipyard.apps.finmon import corrections
from shipyard.apps.finmon.config import FinmonConfig, HttpSource, load_config
from shipyard.apps.finmon.store import Store
from shipyard.errors import ShipyardError

CONFIG_ENV = "SHIPYARD_FINMON_CONFIG"


@dataclass
class FinmonContext:
    """What the routers need: the config and one store connection shared under a lock."""

    config: FinmonConfig
    store: Store
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, config: FinmonConfig) -> FinmonContext:
        return cls(config, Store(config.resolve(config.store), config.windows))

    @contextmanager
    def db(self) -> Iterator[Store]:
        with self.lock:
            yield self.store

    @property
    def max_batch(self) -> int:
        sizes = [s.max_batch for s in self.config.sources if isinstance(s, HttpSource)]
        return sizes[0] if sizes else 1000


def resolve_context(context: Any) -> FinmonContext:
    """A FinmonContext from what the platform passes: a context, a config, a YAML path, or an object/mapping
    carrying one under ``finmon``; otherwise the file named by $SHIPYARD_FINMON_CONFIG."""
    if isinstance(context, FinmonContext):
        return context
    if isinstance(context, FinmonConfig):
        return FinmonContext.from_config(context)
    if isinstance(context, str | Path):
        return FinmonContext.from_config(load_config(context))
    inner = context.get("finmon") if isinstance(context, dict) else getattr(context, "finmon", None)
    if inner is not None:
        return resolve_context(inner)
    if os.environ.get(CONFIG_ENV):
        return FinmonContext.from_config(load_config(os.environ[CONFIG_ENV]))
    raise ShipyardError("the finmon app needs its config", hint=f"set {CONFIG_ENV} to the monitor's YAML file")


class Correction(BaseModel):
    label: Literal["negative", "neutral", "positive"]


def api_router(context: Any) -> APIRouter:
    ctx = resolve_context(context)
    router = APIRouter(tags=["finmon"])
    default_window = ctx.config.alerts.window

    @router.post("/documents", status_code=202)
    def ingest(body: list[dict[str, Any]] | dict[str, Any] = Body(...)) -> dict[str, int]:
        """Accept a batch (a JSON list, or ``{"documents": [...]}``); stored durably before the answer."""
        records = body.get("documents") if isinstance(body, dict) else body
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise HTTPException(422, 'expected a list of JSON objects (or {"documents": [...]})')
        if len(records) > ctx.max_batch:
            raise HTTPException(413, f"at most {ctx.max_batch} documents per request")
        with ctx.db() as store:
            return {"accepted": store.enqueue(records)}

    @router.get("/entities")
    def entities(window: str = default_window) -> list[dict[str, Any]]:
        watch = {e.id: e.names[0] for e in ctx.config.watchlist}
        with ctx.db() as store:
            stats = {row["entity"]: row for row in store.entities(window)}
        return [{"entity": e, "name": n, **stats.get(e, {"volume": 0})} for e, n in watch.items()]

    def known(entity: str) -> None:
        if entity not in {e.id for e in ctx.config.watchlist}:
            raise HTTPException(404, f"unknown entity {entity!r}")

    @router.get("/entities/{entity}/series")
    def series(entity: str, window: str = default_window, since: float = 0.0) -> dict[str, Any]:
        known(entity)
        if window not in ctx.config.windows:
            raise HTTPException(422, f"window must be one of {ctx.config.windows}")
        with ctx.db() as store:
            rows = store.series(entity, window, since=since)
        keep = ("bucket", "volume", "mean_sentiment", "share_negative")
        return {"entity": entity, "window": window, "points": [{k: r[k] for k in keep} for r in rows]}

    @router.get("/entities/{entity}/documents")
    def documents(entity: str, start: float = 0.0, end: float = 1e12, limit: int = Query(50, le=500)) -> list:
        known(entity)
        with ctx.db() as store:
            return store.documents_for(entity, start, end, limit)

    @router.get("/alerts")
    def alerts(after_id: int = 0, entity: str | None = None, limit: int = Query(100, le=1000)) -> list:
        with ctx.db() as store:
            return store.alerts(after_id, entity, limit)

    @router.post("/documents/{doc_id}/correction")
    def correct(doc_id: str, correction: Correction) -> dict[str, Any]:
        """An analyst's sentiment for a document: stored, and filed in the loop's feedback for `shipyard retrain`."""
        try:
            with ctx.db() as store:
                return corrections.correct(store, ctx.config, doc_id, correction.label)
        except ShipyardError as exc:
            raise HTTPException(getattr(exc, "status", 422), exc.message) from None

    return router
