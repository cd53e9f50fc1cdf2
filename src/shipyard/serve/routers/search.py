"""``POST /v1/models/<name>/search`` for retrieval models (scope ``predict``), and ``POST
/v1/models/<name>/passages`` (scope ``admin``) to add or delete passages without retraining.

Searches go through the model's micro-batcher like predictions (the queries of concurrent requests are embedded
together), are counted in the same metrics and follow a version switch the same way.
"""

# no `from __future__ import annotations`: FastAPI must see the request models

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from shipyard.errors import ShipyardError
from shipyard.serve.dependencies import require_scope
from shipyard.serve.errors import ApiError
from shipyard.serve.security import Principal
from shipyard.serve.state import ModelSlot, ServeState

MAX_QUERY_CHARS = 10_000  # longer text is cut by the tokenizer anyway; this bounds the BM25 side


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(max_length=MAX_QUERY_CHARS)
    k: int = Field(default=5, ge=1, le=100)
    # equality on a passage's `group` or a metadata key; a list means any of its values
    filters: dict[str, str | int | list[str | int]] | None = None
    ranking: Literal["dense", "bm25", "hybrid"] | None = None  # default: the one the job configured


class PassageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: int
    text: str = Field(min_length=1, max_length=100_000)
    group: str = ""
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)


class PassageChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    add: list[PassageIn] = Field(default_factory=list, max_length=10_000)
    delete: list[int] = Field(default_factory=list, max_length=100_000)
    save: bool = True  # write the index back into the model folder (atomic files)


Submit = Callable[[ModelSlot, list[dict[str, Any]]], Awaitable[tuple[list[Any], int]]]


def add_search_routes(router: APIRouter, state: ServeState, slot: ModelSlot, submit: Submit) -> None:
    """``submit`` is the predict route's (routers/models.py): the same batcher and retry across a version switch."""
    name = slot.name

    async def search(body: SearchRequest, _: Principal = Depends(require_scope("predict"))) -> Response:
        started = time.perf_counter()
        record = body.model_dump(exclude_none=True)
        record["query"] = record["query"] or " "
        found, version = await submit(slot, [record])
        results = found[0]
        state.metrics.instances.labels(name).inc(1)
        out = {
            "model": name,
            "version": version,
            "results": results,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        return Response(json.dumps(out, allow_nan=False), media_type="application/json")

    async def passages(body: PassageChanges, _: Principal = Depends(require_scope("admin"))) -> dict[str, Any]:
        current = slot.current
        if current is None:
            raise ApiError(503, "unavailable", f"model {name!r} is not loaded yet", headers={"Retry-After": "1"})
        searcher = current.artifact

        def change() -> dict[str, Any]:
            deleted = searcher.delete(body.delete) if body.delete else 0
            added = searcher.add([p.model_dump() for p in body.add]) if body.add else 0
            if body.save:
                searcher.save()
            return {"added": added, "deleted": deleted, "passages": len(searcher.index.passages)}

        try:
            return await asyncio.get_running_loop().run_in_executor(None, change)
        except ShipyardError as exc:
            raise ApiError(422, "invalid_input", str(exc)) from None

    router.add_api_route(f"/{name}/search", search, methods=["POST"], tags=["search"], summary=f"Search with {name}")
    router.add_api_route(
        f"/{name}/passages",
        passages,
        methods=["POST"],
        tags=["search"],
        summary=f"Add or delete passages of {name} (admin)",
    )
