"""``/v1/models``: the served models, and one ``POST /v1/models/<name>/predict`` route per model.

Each model's predict route has the model's own request schema (its features, at most
``ServeSettings.request_limit`` rows), so a bad input is a 422 naming the field before the model sees it. The
route returns its JSON as a raw ``Response`` (``json.dumps``), skipping FastAPI's re-validation and
re-serialisation of the result, which costs as much as a small model's prediction; the declared
``response_model`` still documents it, and the tests check real answers against it (tests/serve).
"""

# no `from __future__ import annotations`: FastAPI must see each predict route's request model (a local class)

import json
import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from shipyard.errors import ShipyardError
from shipyard.serve.batching import BatcherClosed
from shipyard.serve.dependencies import model_slot, require_scope
from shipyard.serve.errors import ApiError
from shipyard.serve.models import LoadedVersion, instance_model, request_model, response_model
from shipyard.serve.routers.search import add_search_routes
from shipyard.serve.schemas import InputSchema, ModelInfo, ModelList
from shipyard.serve.security import Principal
from shipyard.serve.state import ModelSlot, ServeState, get_state

_PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    413: {"description": "Body too large"},
    422: {"description": "Invalid input; the error names the field"},
    429: {"description": "Rate limit exceeded (see Retry-After)"},
    503: {"description": "Not loaded yet, or shutting down"},
}


def describe(slot: ModelSlot, request_limit: int) -> ModelInfo:
    cur = slot.current
    spec = cur.spec if cur else slot.spec
    return ModelInfo(
        name=slot.name,
        version=cur.version if cur else None,
        ready=cur is not None,
        task=spec.task,
        backend=spec.backend,
        run_id=spec.meta.get("run_id"),
        input_schema=InputSchema(features=spec.features),
        target=spec.meta.get("target"),
        labels=spec.labels,
        metrics=spec.meta.get("metrics", {}),
        loaded_at=cur.loaded_at if cur else None,
        max_instances=request_limit,
        predict_url=f"/v1/models/{slot.name}/{'search' if spec.task == 'retrieval' else 'predict'}",
        error=slot.error,
    )


async def _records_and_version_number(slot: ModelSlot, records: list[dict[str, Any]]) -> tuple[list[Any], int]:
    """What the search routes submit through: the results and the number of the version that gave them."""
    results, version = await predict_records(slot, records)
    return results, version.version


async def predict_records(slot: ModelSlot, records: list[dict[str, Any]]) -> tuple[list[Any], LoadedVersion]:
    """The model's results for ``records`` and the version that gave them (retried across a version switch)."""
    for _attempt in range(3):
        batcher, current = slot.batcher, slot.current
        if batcher is None or current is None:
            raise ApiError(
                503,
                "unavailable",
                f"model {slot.name!r} is not loaded yet" + (f": {slot.error}" if slot.error else ""),
                headers={"Retry-After": "1"},
            )
        try:
            return await batcher.submit(records), current
        except BatcherClosed:
            continue  # a new version took over between reading slot.batcher and submitting; use it
        except ShipyardError as exc:
            raise ApiError(422, "invalid_input", f"the model could not use this input: {exc}") from None
    raise ApiError(
        503, "unavailable", f"model {slot.name!r} is switching versions; retry", headers={"Retry-After": "1"}
    )


def _add_predict_route(router: APIRouter, state: ServeState, slot: ModelSlot) -> None:
    """``POST /v1/models/<name>/predict`` with the model's own request schema."""
    name = slot.name
    limit = state.settings.request_limit
    Instance = instance_model(name, slot.spec.features, slot.spec.image_shape)
    Req = request_model(name, Instance, limit)

    async def predict(body: Req, _: Principal = Depends(require_scope("predict"))) -> Response:  # type: ignore[valid-type]
        started = time.perf_counter()
        single = body.instance is not None  # type: ignore[attr-defined]
        rows = [body.instance] if single else body.instances  # type: ignore[attr-defined]
        records = [r.model_dump() for r in rows]
        results, current = await predict_records(slot, records)
        for i, res in enumerate(results):
            if res.pop("non_finite", False):
                raise ApiError(
                    422,
                    "invalid_value",
                    "the model gave a non-finite output for this input (values far outside the training range?)",
                    field="instance" if single else f"instances.{i}",
                )
        state.metrics.instances.labels(name).inc(len(records))
        # a prediction id in every answer; the sampled ones go to the prediction log (serve/loop.py)
        state.loop.after_predict(name, current.version, str(current.spec.path), records, results)
        out: dict[str, Any] = {"model": name, "version": current.version}
        out["prediction" if single else "predictions"] = results[0] if single else results
        out["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return Response(json.dumps(out, allow_nan=False), media_type="application/json")

    router.add_api_route(
        f"/{name}/predict",
        predict,
        methods=["POST"],
        response_model=response_model(name, slot.spec.task),
        tags=["predict"],
        summary=f"Predict with {name}",
        description=(
            f'Send one row as `{{"instance": {{...}}}}` or up to {limit} rows as '
            f'`{{"instances": [...]}}`. Task: {slot.spec.task}.'
        ),
        responses=_PREDICT_ERRORS,
    )


def models_router(state: ServeState) -> APIRouter:
    """The ``/models`` routes (mounted under ``/v1``), with a predict route per served model."""
    router = APIRouter(prefix="/models")
    read = Depends(require_scope("predict"))

    @router.get("", tags=["models"], summary="Served models", response_model=ModelList)
    async def list_models(_: Principal = read, st: ServeState = Depends(get_state)) -> ModelList:
        return ModelList(models=[describe(s, st.settings.request_limit) for s in st.slots.values()])

    @router.get("/{name}", tags=["models"], summary="One served model", response_model=ModelInfo)
    async def get_model(
        _: Principal = read, slot: ModelSlot = Depends(model_slot), st: ServeState = Depends(get_state)
    ) -> ModelInfo:
        return describe(slot, st.settings.request_limit)

    for slot in state.slots.values():
        if slot.spec.task == "retrieval":
            add_search_routes(router, state, slot, _records_and_version_number)
        else:
            _add_predict_route(router, state, slot)

    # unknown names: a 404 naming the served models (known names have their own routes, registered first)
    @router.post("/{name}/predict", include_in_schema=False)
    async def predict_unknown(_: Principal = read, slot: ModelSlot = Depends(model_slot)) -> None:
        return None

    @router.post("/{name}/search", include_in_schema=False)
    async def search_unknown(_: Principal = read, slot: ModelSlot = Depends(model_slot)) -> None:
        raise ApiError(404, "not_found", f"model {slot.name!r} is not a retrieval model; use /predict")

    return router
