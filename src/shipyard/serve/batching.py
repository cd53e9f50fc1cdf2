"""Dynamic micro-batching: concurrent requests for one model run as one batch, off the event loop.

Each request hands its instances (a list of records) to :meth:`MicroBatcher.submit` and awaits a future. One
worker task per model takes the first waiting request, then gathers more until the batch holds
``max_batch_size`` instances or ``max_wait_ms`` has passed, runs the model once on all of them in a thread (so
the event loop keeps accepting and parsing requests meanwhile), and hands every request back its own slice of
the results.

Waiting only pays when other requests are about to arrive. The worker therefore waits for company only when
there is evidence of concurrency (requests already queued, or the previous batch served more than one request);
a lone client at concurrency 1 is served at once and pays no batching delay.

If a batch fails, its requests are retried one by one, so one bad request cannot fail the others that happened
to share its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BatchFn = Callable[[list[dict[str, Any]]], list[Any]]


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


@dataclass
class _Pending:
    records: list[dict[str, Any]]
    future: asyncio.Future[list[Any]]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Gathers concurrent requests into batches for ``fn`` (records -> one result per record, same order).

    ``on_batch(n_instances, n_requests, seconds)`` is called after every batch (metrics). ``fn`` runs in
    ``executor`` (by default a private single-thread pool: the model libraries use several cores per call).
    """

    def __init__(
        self,
        fn: BatchFn,
        *,
        max_batch_size: int,  # no defaults here: the server's come from ServeSettings
        max_wait_ms: float,
        executor: Executor | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self._own_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self.on_batch = on_batch
        self.name = name
        self._queue: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._last_batch_requests = 0

    # ------------------------------------------------------------------ public
    async def submit(self, records: Sequence[dict[str, Any]]) -> list[Any]:
        """Results for ``records`` (one per record, in order), computed in some batch."""
        if self._closed:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        if not records:
            return []
        self._ensure_worker()
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        pending = _Pending(list(records), loop.create_future())
        self._queue.append(pending)
        self._wakeup.set()
        return await pending.future

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, finish what is queued (up to ``timeout`` seconds), stop the worker."""
        self._closed = True
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline and self._worker and not self._worker.done():
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(BatcherClosed(f"model {self.name!r} shut down"))
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ worker
    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        # a worker of another (finished) event loop never runs again: e.g. a router called from a TestClient
        # without its lifespan, where each request has a loop of its own
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._run(), name=f"batcher-{self.name}")

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = await self._gather()
            if batch:
                await self._execute(batch)

    async def _gather(self) -> list[_Pending]:
        assert self._wakeup is not None
        batch = [self._queue.popleft()]
        size = len(batch[0].records)
        expect_company = bool(self._queue) or self._last_batch_requests > 1
        deadline = time.perf_counter() + (self.max_wait_s if expect_company else 0.0)
        while size < self.max_batch_size:
            if self._queue:
                nxt = self._queue[0]
                if size + len(nxt.records) > self.max_batch_size:
                    break  # it starts the next batch
                batch.append(self._queue.popleft())
                size += len(nxt.records)
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=remaining)
        self._last_batch_requests = len(batch)
        return [p for p in batch if not p.future.cancelled()]

    async def _execute(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        records = [r for p in batch for r in p.records]
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self.fn, records)
            if len(results) != len(records):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(records)} records")
        except asyncio.CancelledError:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(BatcherClosed(f"model {self.name!r} shut down"))
            raise
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                self._report(len(records), 1, time.perf_counter() - started)
                return
            log.debug("batch of %d requests failed (%s); retrying one by one", len(batch), type(exc).__name__)
            for p in batch:
                await self._execute([p])
            return
        self._report(len(records), len(batch), time.perf_counter() - started)
        offset = 0
        for p in batch:
            n = len(p.records)
            if not p.future.done():
                p.future.set_result(results[offset : offset + n])
            offset += n

    def _report(self, n_instances: int, n_requests: int, seconds: float) -> None:
        if self.on_batch is not None:
            try:
                self.on_batch(n_instances, n_requests, seconds)
            except Exception:  # metrics must never break serving
                log.exception("batch metrics callback failed")
