"""The finmon store on SQLite (the baseline), PostgreSQL and DuckDB: the monitor's own store workload, one run.

For each history size (the bundled replay: 20,000 documents over a day; a large one: 20 companies, 30 days,
millions of documents, 1-minute windows) and each backend, through the store's own methods
(bench/finmon_store_backends.py runs them on PostgreSQL and DuckDB):

1. write path: micro-batches of scored documents (the pipeline's 256, and 32: a trickling stream's batch) through
   ``Store.write_batch`` (documents, mentions, per entity/window aggregate upserts and source positions in one
   transaction), then every batch replayed: a replay must add nothing (checked; the figure is its speed);
2. read path: what the dashboard and the alert rules ask: the index page (20 sparklines of the last 48 hours), the
   API's entity list (a 1-minute window, every bucket), an entity page (240 minutes, alerts, latest documents),
   one alert check (a 120-minute baseline, the cool-down look-up, the bucket's documents) and the alert scan;
3. one writer process (the monitor) with dashboard reader processes (the server): writer documents/s and reader
   latency alone and together.

Ratios are against SQLite in the same run (> 1: faster than SQLite).

    PYTHONPATH=src python bench/finmon_store.py [--history-docs 2000000] [--days 30]
        [--postgres-url postgresql+psycopg://shipyard:shipyard@127.0.0.1:5432/shipyard_test]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finmon_store_backends as backends

from shipyard.apps.finmon.processing import Document

WINDOWS = ["1min", "1h", "1d"]
ENTITIES = [f"E{i:02d}" for i in range(20)]
T0 = 1_704_067_200  # 2024-01-01 00:00 UTC
DAY = 86_400
SENTENCES_FALLBACK = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007."]


def sentences() -> list[str]:
    path = Path(os.environ.get("SHIPYARD_DATA_DIR", "")) / "financial_phrasebank" / "Sentences_50Agree.txt"
    if not path.is_file():
        return SENTENCES_FALLBACK
    return [line.rsplit("@", 1)[0] for line in path.read_text(encoding="latin-1").splitlines() if "@" in line]


def label_of(score: float) -> str:
    return "negative" if score < -0.33 else "positive" if score > 0.33 else "neutral"


def history(n: int, days: int, texts: list[str], seed: int = 0) -> tuple[dict[str, Any], float]:
    """A scored history: documents over ``days`` naming one company (a tenth two), their mentions, the window
    aggregates exactly as ``write_batch`` counts them, and a few alerts. Returns the tables and the last time."""
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.uniform(0, days * DAY, n))
    first = rng.integers(0, len(ENTITIES), n)
    second = np.where(rng.random(n) < 0.1, (first + rng.integers(1, len(ENTITIES), n)) % len(ENTITIES), -1)
    scores = np.clip(rng.normal(0.05, 0.5, n), -1, 1)
    pick = rng.integers(0, len(texts), n)
    ids = [f"sha1:{hashlib.sha1(f'h{seed}-{i}'.encode()).hexdigest()}" for i in range(n)]
    docs, mentions = [], []
    for i in range(n):
        ents = [ENTITIES[first[i]]] + ([ENTITIES[second[i]]] if second[i] >= 0 else [])
        t, s = float(ts[i]), float(scores[i])
        docs.append((ids[i], t, t, t, "folder", "en", f"{ents[0]} - {texts[pick[i]]}", s, label_of(s), None,
                     json.dumps(ents), "{}"))  # fmt: skip
        mentions.extend((ids[i], e, t, s) for e in ents)
    frame = pd.DataFrame.from_records(mentions, columns=["doc_id", "entity", "ts", "score"])
    frame["neg"] = (frame["score"] < -0.33).astype(int)
    frame["sq"] = frame["score"] ** 2
    aggregates = []
    for window in WINDOWS:
        seconds = backends.window_seconds(window)
        frame["bucket"] = (frame["ts"] // seconds).astype(np.int64) * seconds
        grouped = frame.groupby(["entity", "bucket"]).agg(
            n=("score", "size"), s=("score", "sum"), q=("sq", "sum"), neg=("neg", "sum")
        )
        aggregates.extend((e, window, int(b), int(r.n), int(r.n), float(r.s), float(r.q), int(r.neg))
                          for (e, b), r in zip(grouped.index, grouped.itertuples(), strict=True))  # fmt: skip
    minutes = (frame["ts"] // 60 * 60).unique()
    alerts = [(f"{e}/1min/{int(b)}", e, "1min", int(b), "negative", float(b) + 60,
               json.dumps({"entity": e, "window": "1min", "bucket": int(b), "direction": "negative"}))
              for e in ENTITIES for b in np.sort(rng.choice(minutes, 10, replace=False))]  # fmt: skip
    tables = {
        "documents": (["id", "ts", "received_at", "stored_at", "source", "lang", "text", "score", "label", "dup_of",
                       "entities", "meta"], docs),
        "mentions": (["doc_id", "entity", "ts", "score"], mentions),
        "aggregates": (["entity", "win", "bucket", "n", "n_scored", "sum_score", "sum_sq", "n_negative"], aggregates),
        "alerts": (["key", "entity", "win", "bucket", "direction", "created_at", "payload"], alerts),
    }  # fmt: skip
    return tables, float(ts[-1])


def live_batches(start: float, n: int, size: int, texts: list[str], seed: int) -> list[list[Document]]:
    """Scored documents after the history (one a second of stream time), cut into micro-batches."""
    rng = np.random.default_rng(seed)
    now = time.time()
    docs = []
    for i in range(n):
        ents = [ENTITIES[int(rng.integers(0, len(ENTITIES)))]]
        score = float(np.clip(rng.normal(0.05, 0.5), -1, 1))
        text = f"{ents[0]} - {texts[int(rng.integers(0, len(texts)))]}"
        docs.append(Document(id=f"sha1:{hashlib.sha1(f'live{seed}-{i}'.encode()).hexdigest()}", text=text,
                             ts=start + 1 + i, source="folder", received_at=now, lang="en", normalized=text,
                             entities=ents, score=score, label=label_of(score)))  # fmt: skip
    return [docs[i : i + size] for i in range(0, n, size)]


def quantiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.median(arr)), 2), "p99_ms": round(float(np.percentile(arr, 99)), 2)}


def write(store: Any, batches: list[list[Document]], label: str) -> dict[str, Any]:
    times = []
    for k, batch in enumerate(batches):
        began = time.perf_counter()
        store.write_batch(batch, [], {("folder", label): str(k)})
        times.append(time.perf_counter() - began)
    n = sum(len(b) for b in batches)
    return {"docs_per_s": round(n / sum(times), 1), **quantiles(times)}


def totals(store: Any) -> tuple[int, int]:
    n = store.db.execute("SELECT SUM(n) FROM aggregates WHERE win = '1h'").fetchone()[0]
    return store.count("documents"), int(n or 0)


def dashboard_index(store: Any) -> None:
    for entity in ENTITIES:  # pages.py: store.series(ent.id, window)[-points:]
        store.series(entity, "1h")[-48:]


def entity_page(store: Any, entity: str) -> None:
    store.series(entity, "1min")[-240:]
    store.alerts(entity=entity, limit=50)
    store.documents_for(entity, 0, 1e12, limit=30)


def alert_check(store: Any, entity: str, bucket: int) -> None:
    """AlertEngine._check's reads for one closed bucket with a 120-bucket baseline."""
    store.series(entity, "1min", since=bucket - 120 * 60)
    store.alert_between(entity, "1min", bucket - 1800 + 1, bucket + 1)
    store.documents_for(entity, bucket, bucket + 60, limit=500)


def alert_scan(store: Any, newest: float) -> None:
    """AlertEngine.evaluate's scan: the stream's newest time, then the closed buckets of the last 10 minutes."""
    store.max_ts()
    closed = int(newest // 60) * 60
    store.db.execute("SELECT entity, bucket FROM aggregates WHERE win = ? AND bucket >= ? AND bucket < ? AND n >= ? "
                     "ORDER BY bucket, entity", ("1min", closed - 600, closed, 5)).fetchall()  # fmt: skip


def reads(store: Any, newest: float, seconds: float) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    bucket = int(newest // 60) * 60 - 60
    cases = {
        "dashboard_index": lambda: dashboard_index(store),
        "api_entities_1min": lambda: store.entities("1min"),
        "entity_page": lambda: entity_page(store, ENTITIES[int(rng.integers(0, 20))]),
        "alert_check": lambda: alert_check(store, ENTITIES[int(rng.integers(0, 20))], bucket),
        "alert_scan": lambda: alert_scan(store, newest),
    }
    out = {}
    for name, call in cases.items():
        call()  # warm the caches: the dashboard is read again and again
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 200):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        out[name] = {**quantiles(times), "calls": len(times)}
    return out


# ---------------------------------------------------------------------- one writer, dashboard readers (processes)
def role_writer(kind: str, target: str, start: float, n: int, stop_file: str) -> dict[str, Any]:
    try:
        store = backends.open_store(kind, target, WINDOWS)
        result = write(store, live_batches(start, n, 256, sentences()[:500], seed=int(start) % 1_000_003), "conc")
        store.close()
        return result
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        Path(stop_file).touch()


def role_reader(kind: str, target: str, seconds: float, stop_file: str) -> dict[str, Any]:
    times: dict[str, list[float]] = {"dashboard_index": [], "entity_page": []}
    try:
        store = backends.open_store(kind, target, WINDOWS, read_only=True)
    except Exception as exc:
        print("ready", flush=True)
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    print("ready", flush=True)
    rng = np.random.default_rng(os.getpid())
    deadline = time.monotonic() + seconds
    while not Path(stop_file).exists() and time.monotonic() < deadline:
        for name, call in (
            ("dashboard_index", lambda: dashboard_index(store)),
            ("entity_page", lambda: entity_page(store, ENTITIES[int(rng.integers(0, 20))])),
        ):
            began = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - began)
    store.close()
    return {name: {**quantiles(t), "calls": len(t)} if t else {} for name, t in times.items()}


def _spawn(*args: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", *map(str, args)], stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=1800)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": f"exit code {proc.returncode}, no result"}


def concurrent(kind: str, target: str, start: float, n: int, readers: int) -> dict[str, Any]:
    """The writer alone, readers alone (for as long as the writer took), then the writer and readers together."""
    result: dict[str, Any] = {}
    stop = Path(tempfile.mkdtemp(prefix="finmon-conc-")) / "stop"
    began = time.monotonic()
    result["writer_alone"] = _result(_spawn("writer", kind, target, start, n, stop))
    seconds = max(5.0, time.monotonic() - began - 2)
    stop.unlink(missing_ok=True)
    procs = [_spawn("reader", kind, target, seconds, stop) for _ in range(readers)]
    result["readers_alone"] = [_result(p) for p in procs]
    procs = [_spawn("reader", kind, target, 1800, stop) for _ in range(readers)]
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()  # "ready": connected, caches warm enough to start
    writer = _spawn("writer", kind, target, start + n + 10, n, stop)
    result["together"] = {"writer": _result(writer), "readers": [_result(p) for p in procs]}
    shutil.rmtree(stop.parent, ignore_errors=True)
    return result


# ---------------------------------------------------------------------- the run
def target_for(kind: str, folder: Path, url: str) -> str:
    return url if kind.startswith("postgresql") else str(folder / f"finmon.{kind}")


def run_size(name: str, n: int, days: int, kinds: list[str], args: argparse.Namespace, texts: list[str]) -> dict:
    """Every measurement for one history size and each backend, from a fresh store each."""
    began = time.perf_counter()
    tables, newest = history(n, days, texts)
    print(f"[{name}] history of {n} documents built in {time.perf_counter() - began:.0f} s", flush=True)
    results: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="finmon-store-"))
    try:
        for kind in kinds:
            target = target_for(kind, folder, args.postgres_url)
            store = backends.open_store(kind, target, WINDOWS, create=True)
            began = time.perf_counter()
            backends.bulk_load(kind, store, tables)
            res: dict[str, Any] = {"bulk_load_s": round(time.perf_counter() - began, 1)}
            print(f"[{name}] {kind}: loaded in {res['bulk_load_s']} s", flush=True)
            docs = args.duckdb_write_docs if kind == "duckdb" else args.write_docs  # DuckDB: ~30 documents/s
            for size, count in ((256, docs), (32, docs // 4)):
                batches = live_batches(newest + 100_000 * size, count, size, texts, seed=size)
                res[f"write_{size}"] = write(store, batches, f"b{size}")
                before = totals(store)
                res[f"replay_{size}"] = write(store, batches, f"b{size}")
                res[f"replay_{size}"]["adds_nothing"] = totals(store) == before
            res["reads"] = reads(store, newest, args.read_seconds)
            if not kind.startswith("postgresql"):
                res["file_mb"] = round(Path(target).stat().st_size / 2**20, 1)
            store.close()
            if name in args.concurrent:
                res["concurrent"] = concurrent(kind, target, newest + 10_000_000, docs, args.readers)
            results[kind] = res
            print(f"[{name}] {kind}: {json.dumps(res)}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def ratios(results: dict[str, Any]) -> list[str]:
    lines = []
    base = results.get("sqlite", {})
    for kind, res in results.items():
        if kind == "sqlite":
            continue
        parts = []
        for case in ("write_256", "write_32", "replay_256"):
            if case in res and case in base:
                parts.append(f"{case} x{res[case]['docs_per_s'] / base[case]['docs_per_s']:.2f}")
        for case, r in res.get("reads", {}).items():
            parts.append(f"{case} x{base['reads'][case]['p50_ms'] / max(r['p50_ms'], 1e-3):.2f}")
        lines.append(f"  {kind} vs sqlite (speed ratio, > 1 faster): " + ", ".join(parts))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history-docs", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--replay-docs", type=int, default=20_000)
    parser.add_argument("--write-docs", type=int, default=10_240)
    parser.add_argument("--read-seconds", type=float, default=3.0)
    parser.add_argument("--duckdb-write-docs", type=int, default=1024, help="DuckDB writes ~30/s: fewer")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--kinds", default=",".join(backends.KINDS))
    parser.add_argument("--large-kinds", default="sqlite,postgresql,duckdb", help="backends on the large history")
    parser.add_argument("--concurrent", default="replay,large", help="sizes with the writer/readers case: replay,large")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "SHIPYARD_TEST_POSTGRES_URL", "postgresql+psycopg://shipyard:shipyard@127.0.0.1:5432/shipyard_test"
        ),
    )
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)  # a writer/reader process of the concurrent case
    args = parser.parse_args()
    if args.role:
        role, kind, target, *rest = args.role
        if role == "writer":
            print(json.dumps(role_writer(kind, target, float(rest[0]), int(rest[1]), rest[2])))
        else:
            print(json.dumps(role_reader(kind, target, float(rest[0]), rest[1])))
        return
    args.concurrent = args.concurrent.split(",")
    texts = sentences()
    kinds = args.kinds.split(",")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    results = {"replay": run_size("replay", args.replay_docs, 1, kinds, args, texts)}
    if args.history_docs:
        large_kinds = [k for k in args.large_kinds.split(",") if k in kinds]
        results["large"] = run_size("large", args.history_docs, args.days, large_kinds, args, texts)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    for size, res in results.items():
        print(f"{size}:")
        print("\n".join(ratios(res)))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
