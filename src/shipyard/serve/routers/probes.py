"""``/healthz`` (liveness), ``/readyz`` (readiness: every model loaded and warm) and ``/metrics`` (Prometheus).

The probes never need a key; ``/metrics`` needs one unless public (``ServeSettings.public_endpoints``; the
middleware checks it, since these paths are outside ``/v1``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shipyard.serve.schemas import Health, ModelReadiness, Readiness
from shipyard.serve.state import ServeState, get_state

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: every model loaded and warm",
    responses={503: {"description": "Not ready: models loading, one failed to load, or shutting down"}},
)
async def readyz(state: ServeState = Depends(get_state)) -> Any:  # Readiness, or a 503 JSONResponse
    models = {
        name: ModelReadiness(
            ready=s.current is not None, version=s.current.version if s.current else None, error=s.error
        )
        for name, s in state.slots.items()
    }
    if state.ready:
        return Readiness(status="ready", models=models)
    why = "shutting down" if state.draining else "models not loaded yet"
    if any(s.error for s in state.slots.values()):
        why = "a model failed to load"
    body = Readiness(status="not_ready", models=models).model_dump()
    body["error"] = {"type": "not_ready", "message": why, "field": None}
    return JSONResponse(body, status_code=503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(state: ServeState = Depends(get_state)) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
