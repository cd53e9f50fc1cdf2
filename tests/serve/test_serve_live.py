"""Against a real `shipyard serve` process on 127.0.0.1: a short load test, generated requests from the live
OpenAPI document (no 5xx), and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

import httpx
from serve_helpers import auth

log = logging.getLogger(__name__)
ROW = {"a": 0.25, "b": 1.0, "color": "green"}


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_load_concurrent_clients_zero_errors(live_server: Any, keys: dict[str, Any], record_property: Any) -> None:
    """CI runs the short form (50 clients, 3 s); the full one is
    ``SHIPYARD_LOAD_CLIENTS=200 SHIPYARD_LOAD_SECONDS=20 pytest tests/serve/test_serve_live.py -k load``."""
    base, proc, _ = live_server
    clients = int(os.environ.get("SHIPYARD_LOAD_CLIENTS", "50"))
    seconds = float(os.environ.get("SHIPYARD_LOAD_SECONDS", "3"))
    rss_before = _rss_kib(proc.pid)

    async def main() -> tuple[int, list[str], list[float]]:
        ok = 0
        errors: list[str] = []
        latencies: list[float] = []
        # one connection per client: a single pooled AsyncClient spends its CPU on pool bookkeeping at this
        # concurrency (encode/httpx#3215)
        pool = [httpx.AsyncClient(base_url=base, headers=auth(keys["predict"]), timeout=30) for _ in range(clients)]
        stop = time.monotonic() + seconds
        async with contextlib.AsyncExitStack() as stack:
            for c in pool:
                await stack.enter_async_context(c)

            async def worker(i: int) -> None:
                nonlocal ok
                c = pool[i]
                body = {"instance": {**ROW, "a": i / 10}}
                while time.monotonic() < stop:
                    t0 = time.perf_counter()
                    try:
                        r = await c.post("/v1/models/clf/predict", json=body)
                    except httpx.HTTPError as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    latencies.append(time.perf_counter() - t0)
                    if r.status_code == 200:
                        ok += 1
                    else:
                        errors.append(f"{r.status_code}: {r.text[:200]}")

            await asyncio.gather(*(worker(i) for i in range(clients)))
        return ok, errors, latencies

    ok, errors, latencies = asyncio.run(main())
    rss_after = _rss_kib(proc.pid)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    summary = (
        f"{ok} requests in {seconds:.0f}s from {clients} clients ({ok / seconds:.0f} req/s), p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms; server RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB"
    )
    log.warning("load test: %s", summary)
    record_property("load_test", summary)
    assert errors == [], errors[:5]
    assert ok > 0
    assert rss_after - rss_before < 300 * 1024, summary  # no runaway growth in a few seconds
    metrics = httpx.get(f"{base}/metrics").text
    assert 'shipyard_batch_size_count{model="clf"}' in metrics


def test_generated_requests_from_live_openapi_never_5xx(live_server: Any, keys: dict[str, Any]) -> None:
    import schemathesis  # the test extra (pyproject): a missing package fails the test, never skips it

    base, _, log_file = live_server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    checked = 0
    server_errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        _fuzz(operation, keys["admin"], server_errors)()
        checked += 1
    assert server_errors == [], server_errors[:3]
    assert checked >= 6
    assert "Traceback" not in log_file.read_text()


def _fuzz(operation: Any, key: str, server_errors: list[str]) -> Any:
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call(headers=auth(key), timeout=30)
        if response.status_code >= 500:
            server_errors.append(f"{operation.label}: {response.status_code} {response.text[:200]} for {case.body!r}")

    return run


def test_sigterm_exits_cleanly(live_server: Any) -> None:
    _, proc, log_file = live_server
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=20)
    text = log_file.read_text()
    # uvicorn re-raises the signal it caught once shutdown is complete, so -SIGTERM is a clean exit too
    assert code in (0, -signal.SIGTERM), text[-2000:]
    assert "shutdown begun" in text and "Application shutdown complete" in text
