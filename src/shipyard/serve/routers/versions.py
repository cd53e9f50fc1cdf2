"""``POST /v1/models/<name>/versions`` (admin): load a new version, warm it up, then switch traffic to it."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends

from shipyard.errors import ShipyardError
from shipyard.serve.dependencies import find_slot, require_scope
from shipyard.serve.errors import ApiError
from shipyard.serve.models import LoadedVersion, ModelNotFound
from shipyard.serve.schemas import VersionLoaded, VersionRequest
from shipyard.serve.security import Principal
from shipyard.serve.state import ModelSlot, ServeState, get_state

log = logging.getLogger(__name__)

router = APIRouter(prefix="/models", tags=["models"])


async def _load(state: ServeState, slot: ModelSlot, path: str) -> LoadedVersion:
    """Load ``path`` into ``slot``; every failure is one 422 (``load_failed``) naming the path field."""
    name = slot.name
    try:
        return await state.load_into(slot, path)
    except (ModelNotFound, OSError) as exc:  # one answer, so the route cannot probe the file system
        log.warning("model %r: no servable model at %s: %s", name, path, exc)
        raise ApiError(
            422,
            "load_failed",
            "could not load the new version: no readable run or model folder at this path",
            field="path",
        ) from None
    except ShipyardError as exc:
        log.warning("model %r: new version from %s refused: %s", name, path, exc)
        raise ApiError(422, "load_failed", f"could not load the new version: {exc}", field="path") from None
    except Exception as exc:
        log.error("model %r: loading %s failed: %s: %s", name, path, type(exc).__name__, exc)
        raise ApiError(
            422, "load_failed", f"could not load the new version: {type(exc).__name__}: {exc}", field="path"
        ) from None


async def _audit(state: ServeState, actor: str, name: str, loaded: LoadedVersion, previous: int | None) -> None:
    if state.audit is None:
        return
    details = {"version": loaded.version, "previous": previous, "path": str(loaded.spec.path)}
    try:
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: state.audit.record("model.version", actor, f"model:{name}", details)
        )
    except Exception as exc:  # the switch happened; the audit failure is logged, not hidden
        log.error("audit log write failed for model %r version %d: %s", name, loaded.version, exc)


@router.post(
    "/{name}/versions",
    summary="Load a new version (admin): warm it up, then switch traffic to it",
    response_model=VersionLoaded,
)
async def add_version(
    name: str,
    body: VersionRequest,
    principal: Principal = Depends(require_scope("admin")),
    state: ServeState = Depends(get_state),
) -> VersionLoaded:
    slot = find_slot(state, name)  # after the body is validated, as a 422 comes before a 404
    async with slot.lock:
        previous = slot.current.version if slot.current else None
        loaded = await _load(state, slot, body.path)
    await _audit(state, principal.name, slot.name, loaded, previous)
    return VersionLoaded(
        name=slot.name,
        version=loaded.version,
        previous_version=previous,
        path=str(loaded.spec.path),
        backend=loaded.spec.backend,
        load_seconds=loaded.load_seconds,
    )
