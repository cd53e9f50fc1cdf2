"""Closed-loop load test: `shipyard serve` against a naive one-request-at-a-time FastAPI baseline.

    python bench/serve_load.py --model runs/<run> [--requests 2000] [--concurrency 1,16,64] [--json out.json]

Both servers run as subprocesses on 127.0.0.1 and serve the same run:

- shipyard: ``serve_command`` as in production (API key auth, dynamic micro-batching, metrics, the run's
  ONNX/int8 artifact when ``optimized/`` has one);
- baseline: a minimal FastAPI app with one POST route that runs the run's torch fp32 model eagerly on each
  request, one request at a time (a lock), the way a first version of a model service is often written.

For each concurrency level, ``C`` async httpx clients send ``--requests`` requests in total (closed loop: each
client sends its next request when the previous one returns), one instance per request, inputs taken from the
run's stored test split. Reported: throughput, p50 / p99 latency, errors, and shipyard / baseline ratios.
The load generator shares the machine with the servers, so absolute numbers are lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("serve_load")


# ------------------------------------------------------------------------------------------- baseline server
def baseline_app(model_path: str) -> Any:
    """The naive service: torch fp32 eager, one request at a time."""
    from fastapi import FastAPI

    from shipyard.artifact import Artifact

    path = Path(model_path)
    artifact = Artifact.load(path / "model" if (path / "model" / "shipyard.json").is_file() else path)
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        with lock:
            return {"prediction": artifact.predict_records([body["instance"]])[0]}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def run_baseline(model_path: str, port: int) -> None:
    import uvicorn

    uvicorn.run(baseline_app(model_path), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_instances(model_path: Path, n: int = 256) -> list[dict[str, Any]]:
    """Rows from the run's stored test split (else synthetic rows from the feature schema)."""
    from shipyard.serve.models import read_spec

    spec = read_spec(model_path)
    features = spec.features
    run_dir = model_path if (model_path / "config.yaml").is_file() else spec.path.parent
    for split in ("test", "validation", "train"):
        stored = run_dir / "splits" / f"{split}.parquet"
        if stored.is_file():
            import pandas as pd

            frame = pd.read_parquet(stored).head(n)
            rows = []
            for rec in frame.to_dict(orient="records"):
                row = {}
                for f in features:
                    value = rec.get(f["name"])
                    if f["type"] == "numeric":
                        value = 0.0 if value is None or value != value else float(value)
                    else:
                        value = "" if value is None else str(value)
                    row[f["name"]] = value
                rows.append(row)
            if rows:
                return rows
    synthetic = {"numeric": 0.5, "categorical": "a", "text": "a gripping, beautifully acted film"}
    return [{f["name"]: synthetic.get(f["type"], "") for f in features}]


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"server at {url} not ready after {timeout}s")


# ------------------------------------------------------------------------------------------- load
async def closed_loop(
    url: str, headers: dict[str, str], rows: list[dict[str, Any]], concurrency: int, total: int
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(total))
    bodies = [json.dumps({"instance": r}).encode() for r in rows]
    headers = {**headers, "Content-Type": "application/json"}
    # One client (one keep-alive connection) per simulated user: a single AsyncClient shared by many tasks spends
    # its CPU in connection-pool bookkeeping (encode/httpx#3215), which on a shared 2-core host would be load
    # generator overhead charged to the servers under test.
    clients = [
        httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=60.0, headers=headers)
        for _ in range(concurrency)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c)

        async def worker(client: httpx.AsyncClient) -> None:
            for i in counter:
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, content=bodies[i % len(bodies)])
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:120]}")
                        continue
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__} {exc}")
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "concurrency": concurrency,
        "requests": total,
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": round(elapsed, 3),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
    }


def batch_totals(metrics_url: str | None) -> tuple[float, float]:
    """(batches, instances) so far, from shipyard's /metrics."""
    if not metrics_url:
        return 0.0, 0.0
    import re

    import httpx

    text = httpx.get(metrics_url, timeout=10).text
    count = re.search(r'shipyard_batch_size_count\{model="m"\} ([0-9.e+]+)', text)
    total = re.search(r'shipyard_batch_size_sum\{model="m"\} ([0-9.e+]+)', text)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


def drive(
    name: str,
    url: str,
    headers: dict[str, str],
    rows: list[dict[str, Any]],
    args: Any,
    pid: int,
    metrics_url: str | None = None,
) -> list[Any]:
    asyncio.run(closed_loop(url, headers, rows, 4, min(100, args.requests)))  # warm-up
    results = []
    for c in args.concurrency:
        before = rss_mib(pid)
        batches0, inst0 = batch_totals(metrics_url)
        res = asyncio.run(closed_loop(url, headers, rows, c, args.requests))
        batches1, inst1 = batch_totals(metrics_url)
        mean_batch = (inst1 - inst0) / (batches1 - batches0) if batches1 > batches0 else 1.0
        res.update(system=name, rss_before_mib=round(before, 1), rss_after_mib=round(rss_mib(pid), 1))
        res["mean_batch_size"] = round(mean_batch, 2)
        log.info(
            "%-9s c=%-3d %7.1f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  rss %.0f->%.0f MiB  batch %.1f",
            name,
            c,
            res["throughput_rps"],
            res["p50_ms"],
            res["p99_ms"],
            res["errors"],
            res["rss_before_mib"],
            res["rss_after_mib"],
            res["mean_batch_size"],
        )
        results.append(res)
    return results


def start(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="run or model folder")
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated client counts")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if args.baseline_server:
        run_baseline(str(args.model), args.baseline_server)
        return 0
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    model = args.model.resolve()
    rows = sample_instances(model)
    from shipyard.serve.models import resolve_model_dir
    from shipyard.store.keys import KeyStore

    served = resolve_model_dir(model)
    log.info("model %s: shipyard serves %s; baseline serves torch fp32 eager", model, served)
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "shipyard.db"
        key = KeyStore(db).create("bench", "predict")
        results: list[dict[str, Any]] = []
        port = free_port()
        code = (
            "import logging; from pathlib import Path; logging.basicConfig(level=logging.WARNING); "
            "from shipyard.cli.serve import serve_command; "
            f"serve_command([{f'm={model}'!r}], host='127.0.0.1', port={port}, store=Path({str(db)!r}), "
            f"rate_limit=0, max_wait_ms={args.max_wait_ms}, max_batch_size={args.max_batch_size})"
        )
        proc = start([sys.executable, "-c", code], tmp / "shipyard.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            results += drive(
                "shipyard",
                f"http://127.0.0.1:{port}/v1/models/m/predict",
                {"Authorization": f"Bearer {key}"},
                rows,
                args,
                proc.pid,
                metrics_url=f"http://127.0.0.1:{port}/metrics",
            )
        finally:
            stop(proc)
        port = free_port()
        proc = start([sys.executable, __file__, "--model", str(model), "--baseline-server", str(port)], tmp / "b.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            results += drive("baseline", f"http://127.0.0.1:{port}/predict", {}, rows, args, proc.pid)
        finally:
            stop(proc)
    by = {(r["system"], r["concurrency"]): r for r in results}
    ratios = []
    for c in args.concurrency:
        s, b = by[("shipyard", c)], by[("baseline", c)]
        ratio = {
            "concurrency": c,
            "throughput_x": round(s["throughput_rps"] / b["throughput_rps"], 2) if b["throughput_rps"] else None,
            "p50_x": round(s["p50_ms"] / b["p50_ms"], 2) if b["p50_ms"] else None,
            "p99_x": round(s["p99_ms"] / b["p99_ms"], 2) if b["p99_ms"] else None,
        }
        ratios.append(ratio)
        log.info(
            "c=%-3d shipyard/baseline: throughput x%s, p50 x%s, p99 x%s",
            c,
            ratio["throughput_x"],
            ratio["p50_x"],
            ratio["p99_x"],
        )
    errors = sum(r["errors"] for r in results)
    report = {"model": str(model), "served": str(served), "cpus": os.cpu_count(), "results": results, "ratios": ratios}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    log.info("total errors: %d", errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
