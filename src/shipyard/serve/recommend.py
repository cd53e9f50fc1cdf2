"""Routes of a served recommender (a ``task: recommendation`` model folder), mounted at ``/v1/models/{name}``.

- ``GET  /v1/models/{name}/recommend?user_id=42&k=10[&category=Drama][&mmr=0.7][&exclude_seen=true]``
- ``POST /v1/models/{name}/recommend`` ``{"user_id": 42}`` or ``{"recent": [item ids]}`` (an anonymous session)
- ``POST /v1/models/{name}/events`` ``{"user_id": 42, "item_id": 7, "rating": 5}``: recorded at once; the user's
  next recommendations fold it in (no retraining). Appended to ``<run>/events.jsonl`` (0600), which
  ``shipyard data forget`` erases from and retraining reads.
- ``DELETE /v1/models/{name}/users/{user_id}`` (admin): forget the user's served history and vector now, and
  remove their lines from the event log.
- ``GET  /v1/models/{name}/items/{item_id}``: an item's metadata.
- ``POST /v1/models/{name}/versions`` ``{"path": RUN}`` (admin): switch to another recommender run (a retrained
  one), carrying over the events it has not learnt.

Same API keys (predict scope, admin for erasure), error shape, access metrics and micro-batching (predict's
``max_batch_size`` / ``max_wait_ms``, its batch metrics, no wait for a lone client) as predict: concurrent
``/recommend`` requests are answered by one ``recommend_many`` call, each with its own filters and errors; an
event is applied before its response, so a request sent after it is batched with a state that has it.

An unknown user gets the popularity list with ``"fallback": "popularity"``; an unknown item is a 404 naming it.
The state lives in the process: with several workers each keeps its own (events reach only the worker that
received them), so a recommender is served with one worker.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from shipyard.artifact_recommend import INTERACTIONS, is_recommender, load_recommender
from shipyard.config.serve import ServeSettings
from shipyard.errors import ShipyardError
from shipyard.io import PRIVATE_MODE, atomic_write_text
from shipyard.serve.batching import BatcherClosed, MicroBatcher
from shipyard.serve.dependencies import require_scope
from shipyard.serve.errors import ApiError
from shipyard.serve.metrics import ServeMetrics
from shipyard.serve.schemas import VersionRequest

log = logging.getLogger(__name__)
EVENT_LOG = "events.jsonl"


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int | str | None = None
    recent: list[int | str] | None = Field(default=None, max_length=1000)
    k: int = Field(default=10, ge=1, le=1000)
    category: str | None = None
    mmr: float | None = Field(default=None, ge=0, le=1)
    exclude_seen: bool = True


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int | str
    item_id: int | str
    rating: float = 1.0
    timestamp: int | None = None


def model_folder(path: str | Path) -> Path:
    path = Path(path)
    return path / "model" if (path / "model" / "shipyard.json").is_file() else path


def split_recommenders(models: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(predict models, recommenders) of the models to serve."""
    recs = {n: p for n, p in models.items() if is_recommender(model_folder(p))}
    return {n: p for n, p in models.items() if n not in recs}, recs


class EventLog:
    """``events.jsonl`` beside the model folder: one JSON line per event, 0600; erasure rewrites it atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)

    def remove_users(self, keys: set[str]) -> int:
        with self.lock:
            if not self.path.is_file():
                return 0
            lines = self.path.read_text(encoding="utf-8").splitlines()
            kept = [ln for ln in lines if ln.strip() and str(json.loads(ln).get("user_id")) not in keys]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in kept), private=True)
            return len(lines) - len(kept)


def _api_error(exc: ShipyardError, status: int = 404) -> ApiError:
    kind = "unknown_item" if "unknown item" in exc.message else "bad_request"
    return ApiError(status if kind == "unknown_item" else 422, kind, exc.render(), field=exc.where)


class Served:
    """The version a recommender's routes answer from; a version switch replaces it in one assignment."""

    def __init__(self, folder: Path, version: int) -> None:
        self.folder, self.version = folder, version
        self.live, self.meta = load_recommender(folder)
        self.events = EventLog(folder.parent / EVENT_LOG)
        _replay(self.live, self.events.path)


def _batcher(name: str, router: APIRouter, settings: ServeSettings, metrics: ServeMetrics | None) -> MicroBatcher:
    """The /recommend batcher: each batch is answered by the version serving when it runs."""

    def run_batch(queries: list[dict[str, Any]]) -> list[tuple[Served, Any]]:
        served = router.served  # type: ignore[attr-defined]  # one version answers the whole batch
        return [(served, out) for out in served.live.recommend_many(queries)]

    on_batch = metrics.batch_observer(name) if metrics is not None else None
    return MicroBatcher(run_batch, max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                        on_batch=on_batch, name=f"recommend-{name}")  # fmt: skip


def recommender_router(
    name: str, path: str | Path, settings: ServeSettings | None = None, metrics: ServeMetrics | None = None
) -> APIRouter:
    """The routes of one recommender; its folder is loaded now (a bad folder fails before the server starts).

    ``/recommend`` requests go through a `MicroBatcher` with predict's knobs (``max_batch_size``,
    ``max_wait_ms``; 1 turns batching off): concurrent requests become one `LiveRecommender.recommend_many`
    call (one user-vector lookup / user-tower call, one FAISS search), on the version serving when the batch
    runs; ``metrics`` gets predict's batch metrics under the recommender's name."""
    router = APIRouter(tags=[f"recommender {name}"])
    router.served = Served(model_folder(path), 1)  # type: ignore[attr-defined]  # applications read it too

    batcher = _batcher(name, router, settings or ServeSettings(), metrics)
    router.batcher = batcher  # type: ignore[attr-defined]  # the server closes it on shutdown

    async def answer(req: RecommendRequest) -> dict[str, Any]:
        if req.user_id is None and req.recent is None:
            raise ApiError(422, "validation_error", "give user_id or recent (item ids)", field="user_id")
        try:
            served, out = (await batcher.submit([req.model_dump()]))[0]
        except BatcherClosed:
            raise ApiError(503, "unavailable", f"recommender {name!r} is shutting down",
                           headers={"Retry-After": "1"}) from None  # fmt: skip
        if isinstance(out, ShipyardError):
            raise _api_error(out)
        if metrics is not None:
            metrics.instances.labels(name).inc()
        return {"model": name, "version": served.version, "created": served.meta.get("created"), **out}

    @router.get("/recommend")
    async def recommend_get(
        user_id: str = Query(..., max_length=200),
        k: int = Query(10, ge=1, le=1000),
        category: str | None = Query(None, max_length=200),
        mmr: float | None = Query(None, ge=0, le=1),
        exclude_seen: bool = True,
    ) -> dict[str, Any]:
        return await answer(
            RecommendRequest(user_id=user_id, k=k, category=category, mmr=mmr, exclude_seen=exclude_seen)
        )

    @router.post("/recommend")
    async def recommend_post(req: RecommendRequest) -> dict[str, Any]:
        return await answer(req)

    @router.post("/events")
    def record(req: EventRequest) -> dict[str, Any]:
        served = router.served  # type: ignore[attr-defined]
        live, events = served.live, served.events
        try:
            out = live.record_event(req.user_id, req.item_id, req.rating, req.timestamp)
        except ShipyardError as exc:
            raise _api_error(exc) from None
        if out["recorded"]:
            ts = req.timestamp if req.timestamp is not None else int(time.time())
            rated = "rating" in req.model_fields_set  # a click without stars is no rating (retrain of MF skips it)
            record = {"user_id": req.user_id, "item_id": out["item_id"], "rating": req.rating, "timestamp": ts}
            events.append({**record, "rated": rated})
        return out

    @router.delete("/users/{user_id}", dependencies=[Depends(require_scope("admin"))])
    def forget(user_id: str) -> dict[str, Any]:
        served = router.served  # type: ignore[attr-defined]
        known = served.live.forget([user_id])
        removed = served.events.remove_users({user_id})
        log.info("forgot a user of %s: served state %s, %d logged events removed", name, bool(known), removed)
        return {"forgotten": bool(known), "events_removed": removed}

    @router.get("/items/{item_id}")
    def item(item_id: str) -> dict[str, Any]:
        live = router.served.live  # type: ignore[attr-defined]
        try:
            return live.item_info(live.item_position(item_id))
        except ShipyardError as exc:
            raise _api_error(exc) from None

    _versions_route(router, name)
    return router


def _versions_route(router: APIRouter, name: str) -> None:
    """``POST /versions`` (admin): switch the router's recommender to another run."""
    switching = threading.Lock()

    @router.post("/versions", dependencies=[Depends(require_scope("admin"))])
    def switch(body: VersionRequest) -> dict[str, Any]:
        """Load a retrained run, warm it up, carry over the events it has not learnt, then switch to it."""
        with switching:
            old = router.served  # type: ignore[attr-defined]
            try:
                new = Served(model_folder(body.path), old.version + 1)
                new.live.recommend(recent=[new.live.item_ids[0]], k=1)  # warm-up: FAISS and the towers run once
            except (OSError, KeyError, ValueError) as exc:  # one answer, so the route cannot probe the file system
                log.warning("recommender %r: no servable recommender at %s: %s", name, body.path, exc)
                message = "could not load the new version: no readable recommender run at this path"
                raise ApiError(422, "load_failed", message, field="path") from None
            except ShipyardError as exc:
                log.warning("recommender %r: new version from %s refused: %s", name, body.path, exc)
                raise ApiError(422, "load_failed", f"could not load the new version: {exc}", field="path") from None
            carried = _carry_over(old, new)
            router.served = new  # type: ignore[attr-defined]
        log.info("recommender %r: version %d (%s) now serves; %d events carried over", name, new.version,
                 new.folder, carried)  # fmt: skip
        return {"name": name, "version": new.version, "previous_version": old.version, "path": str(new.folder),
                "events_carried_over": carried}  # fmt: skip


def _carry_over(old: Served, new: Served) -> int:
    """Events the old version received after the newest event the new model knows: folded into the new version
    and appended to its log, so a switch to a model retrained a while ago loses no one's recent clicks."""
    if not old.events.path.is_file():
        return 0
    known = pd.read_parquet(new.folder / INTERACTIONS, columns=["timestamp"]).timestamp
    newest = int(known.max()) if len(known) else -1
    carried = 0
    for line in old.events.path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if int(rec.get("timestamp", 0)) <= newest:
            continue
        try:
            new.live.record_event(rec["user_id"], rec["item_id"], float(rec.get("rating", 1.0)), rec["timestamp"])
        except ShipyardError as exc:  # an item the new version lacks: logged, not fatal
            log.warning("event not carried over to the new version: %s", exc)
            continue
        new.events.append(rec)
        carried += 1
    return carried


def _replay(live: Any, path: Path) -> None:
    """Events received before a restart are part of the users' histories again."""
    if not path.is_file():
        return
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            live.record_event(rec["user_id"], rec["item_id"], float(rec.get("rating", 1.0)), rec.get("timestamp"))
        except (ValueError, KeyError, ShipyardError) as exc:
            log.warning("%s line %d skipped: %s", path, n + 1, exc)


def recommender_warning(name: str, path: str | Path, *, strict: bool) -> str | None:
    """`shipyard serve`'s start-up check of a recommender: the erasure flag, as for predict models."""
    folder = model_folder(path)
    meta = json.loads((folder / "shipyard.json").read_text(encoding="utf-8"))
    if not (meta.get("erasure") or {}).get("needs_retraining"):
        return None
    message = f"recommender {name!r} ({path}) needs retraining: events were erased after training"
    if strict:
        raise ShipyardError(message, where=str(path), hint="retrain it, or serve without --strict")
    log.warning("%s", message)
    return message


def recommender_mounts(
    recommenders: dict[str, Any], settings: ServeSettings | None = None, metrics: ServeMetrics | None = None
) -> list[tuple[str, APIRouter]]:
    return [(f"/v1/models/{name}", recommender_router(name, path, settings, metrics))
            for name, path in recommenders.items()]  # fmt: skip
