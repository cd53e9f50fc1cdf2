"""What the routes and the middleware share (``app.state.serve``): the models, their versions, the switcher.

A :class:`ModelSlot` is a served model name with the schema it was started with and the version now taking
traffic. :meth:`ServeState.load_into` loads a new version off the event loop, warms it up, checks that it takes
the same inputs, then switches traffic to it; requests already queued on the old version finish there.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from shipyard.config.serve import ServeSettings
from shipyard.errors import ShipyardError
from shipyard.serve.batching import MicroBatcher
from shipyard.serve.limits import private_paths
from shipyard.serve.metrics import ServeMetrics
from shipyard.serve.models import LoadedVersion, ModelSpec, load_version, make_predictor, same_schema
from shipyard.serve.security import AuthFailureLimiter, KeyAuthenticator, RateLimiter

log = logging.getLogger(__name__)


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


class ServeState:
    """Everything the routes and middleware share (``app.state.serve``)."""

    def __init__(self, slots: dict[str, ModelSlot], settings: ServeSettings, key_store: Any, audit: Any) -> None:
        self.slots = slots
        self.settings = settings
        self.key_store = key_store
        self.audit = audit
        self.metrics = ServeMetrics()
        ttl = settings.key_cache_ttl_s
        self.authenticator = KeyAuthenticator(key_store, ttl_s=ttl, negative_ttl_s=min(2.0, ttl)) if key_store else None
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.burst)
        self.auth_failures = AuthFailureLimiter(settings.auth_failures_per_s, settings.auth_failure_burst)
        self.private_paths = private_paths(frozenset(settings.public_endpoints))
        self.body_secret = secrets.token_bytes(32)  # keys the access log's body HMAC; never leaves the process
        self.draining = False
        self.inflight = 0
        self.loading_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.loop: Any = None  # the continuous-learning part (serve/loop.py ServeLoop), set by create_app
        self.extra_batchers: list[MicroBatcher] = []  # the recommenders' (serve/recommend.py), set by create_app

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
        return MicroBatcher(
            make_predictor(version.artifact),
            max_batch_size=self.settings.max_batch_size,
            max_wait_ms=self.settings.max_wait_ms,
            on_batch=self.metrics.batch_observer(slot.name),
            name=f"{slot.name}-v{version.version}",
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
            task = loop.create_task(old.close(timeout=self.settings.drain_timeout_s))
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
