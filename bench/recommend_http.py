"""The recommender over HTTP: `shipyard serve` (a subprocess, one worker, auth off, no rate limit) with
micro-batching off (the named baseline: ``--max-batch-size 1``, each request its own model call) and on
(``--max-batch-size 64 --max-wait-ms 5``, the defaults), both running side by side in the same run and measured in
alternating slices, with on / off ratios.

The load is a closed loop of ``C`` clients (one keep-alive connection each, as bench/serve_load.py), half the
requests ``GET /recommend?user_id=..&k=10`` for the run's users, half ``POST /recommend {"recent": [20 items]}``
anonymous sessions (a fold-in each: the two-tower model's user tower, BPR's closed-form solve). Then the time
from ``POST /events`` to a recommendation that reflects it (batching on). Used by ``bench/recommend.py --sections
serve`` (and its ``core`` section, on the BPR model it trains).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from serve_load import free_port, start, stop, wait_ready

log = logging.getLogger("bench.recommend_http")
MODES = {"off": {"max_batch_size": 1, "max_wait_ms": 5.0}, "on": {"max_batch_size": 64, "max_wait_ms": 5.0}}


def _requests(users: list[Any], items: list[Any], n: int) -> list[tuple[str, Any]]:
    rng = np.random.default_rng(0)
    out: list[tuple[str, Any]] = []
    for i in range(n):
        if i % 2 == 0:
            out.append(("GET", {"user_id": users[(i // 2) % len(users)], "k": 10}))
        else:
            out.append(("POST", {"recent": [items[j] for j in rng.choice(len(items), 20, replace=False)], "k": 10}))
    return out


async def _closed_loop(url: str, reqs: list[tuple[str, Any]], concurrency: int) -> tuple[list[float], float, int]:
    """(latencies in ms, wall seconds, errors) of ``reqs`` sent by ``concurrency`` clients."""
    import httpx

    lat: list[float] = []
    errors = 0
    todo = iter(reqs)
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=60) for _ in range(concurrency)]
    async with contextlib.AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c)

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal errors
            for method, body in todo:
                t = time.perf_counter()
                if method == "GET":
                    r = await client.get(url, params=body)
                else:
                    r = await client.post(url, json=body)
                if r.status_code != 200:
                    errors += 1
                    continue
                lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        return lat, time.perf_counter() - t0, errors


def _summary(lat: list[float], wall: float, errors: int, batches: tuple[float, float]) -> dict[str, float]:
    lat = sorted(lat)
    return {"p50_ms": lat[len(lat) // 2], "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "per_s": len(lat) / wall, "errors": errors, "requests": len(lat),
            "mean_requests_per_batch": batches[1] / max(1.0, batches[0])}  # fmt: skip


def _batches(metrics_url: str) -> tuple[float, float]:
    import httpx

    text = httpx.get(metrics_url, timeout=10).text
    count = re.search(r'shipyard_batch_requests_count\{model="m"\} ([0-9.e+]+)', text)
    total = re.search(r'shipyard_batch_requests_sum\{model="m"\} ([0-9.e+]+)', text)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


def _event_lag(base: str, users: list[Any]) -> dict[str, float]:
    import httpx

    url = f"{base}/recommend"
    lags = []
    with httpx.Client(timeout=30) as client:
        for user in users[:50]:
            first = client.get(url, params={"user_id": user, "k": 10}).json()["items"][0]["item_id"]
            t = time.perf_counter()
            client.post(f"{base}/events", json={"user_id": user, "item_id": first})
            again = client.get(url, params={"user_id": user, "k": 10}).json()["items"]
            lags.append((time.perf_counter() - t) * 1000)
            assert first not in [it["item_id"] for it in again]
    lags.sort()
    return {"p50": lags[len(lags) // 2], "max": lags[-1]}


def _server(run: Path, tmp: Path, knobs: dict[str, float]) -> tuple[Any, str]:
    served = _copy(run, tmp / "run")  # the bench's events go to the copy's log, never the run's
    port = free_port()
    code = (
        "import logging; from pathlib import Path; logging.basicConfig(level=logging.WARNING); "
        "from shipyard.cli.serve import serve_command; "
        f"serve_command([{f'm={served}'!r}], host='127.0.0.1', port={port}, store=Path({str(tmp)!r}) / 'k.db', "
        f"no_auth=True, rate_limit=0, max_wait_ms={knobs['max_wait_ms']}, max_batch_size={knobs['max_batch_size']})"
    )
    proc = start([sys.executable, "-c", code], tmp / "serve.log")
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, f"http://127.0.0.1:{port}"


def http_bench(
    run: Path, users: list[Any], items: list[Any], *, requests: int = 1000, levels: tuple[int, ...] = (1, 64),
    rounds: int = 4,
) -> dict[str, Any]:  # fmt: skip
    """Batching off and on, each level in ``levels``, on the same request list; ratios on / off.

    Both servers run side by side, and each level is measured in ``rounds`` alternating slices (off, on, on, off,
    ...), so that the other processes' load, which comes and goes on a shared machine, falls on both alike."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would load the client
    out: dict[str, Any] = {}
    reqs = _requests(users, items, requests)
    servers: dict[str, tuple[Any, str]] = {}
    with tempfile.TemporaryDirectory(prefix="rec_http_") as tmp:
        try:
            for mode, knobs in MODES.items():
                (Path(tmp) / mode).mkdir()
                servers[mode] = _server(run, Path(tmp) / mode, knobs)
                asyncio.run(_closed_loop(f"{servers[mode][1]}/v1/models/m/recommend", reqs[:100], 4))  # warm-up
            for level in levels:
                acc = {m: ([], 0.0, 0, _batches(f"{base}/metrics")) for m, (_, base) in servers.items()}
                for r in range(rounds):
                    part = reqs[r * len(reqs) // rounds : (r + 1) * len(reqs) // rounds]
                    for mode in list(servers) if r % 2 == 0 else list(servers)[::-1]:
                        lat, wall, errors = asyncio.run(
                            _closed_loop(f"{servers[mode][1]}/v1/models/m/recommend", part, level)
                        )
                        old = acc[mode]
                        acc[mode] = (old[0] + lat, old[1] + wall, old[2] + errors, old[3])
                row = out.setdefault(f"concurrency {level}", {})
                for mode, (lat, wall, errors, b0) in acc.items():
                    b1 = _batches(f"{servers[mode][1]}/metrics")
                    row[f"batching {mode}"] = _summary(lat, wall, errors, (b1[0] - b0[0], b1[1] - b0[1]))
                    log.info("http %s batching %s concurrency %d: %s", run.name, mode, level, row[f"batching {mode}"])
                on, off = row["batching on"], row["batching off"]
                row["ratio on/off"] = {k: on[k] / off[k] for k in ("p50_ms", "p99_ms", "per_s") if off[k]}
            out["event_to_updated_recommendation_ms"] = _event_lag(f"{servers['on'][1]}/v1/models/m", users)
        finally:
            for proc, _ in servers.values():
                stop(proc)
    return out


def _copy(run: Path, to: Path) -> Path:
    """The parts of a run that serving reads (``model/``, ``optimized/towers/``), or a model folder."""
    if not (run / "model").is_dir():
        shutil.copytree(run, to / "model")
        return to / "model"
    shutil.copytree(run / "model", to / "model")
    if (run / "optimized" / "towers").is_dir():
        shutil.copytree(run / "optimized" / "towers", to / "optimized" / "towers")
    return to
