"""Retrieval on held-out Bitext queries, side by side in one run: BM25, frozen all-MiniLM-L6-v2 (mean pooling,
cosine), the shipyard fine-tuned bi-encoder, and hybrid (fine-tuned + BM25, reciprocal rank fusion); then the
FAISS index's query time on 100,000 SYNTHETIC passages (random unit vectors of the encoder's width: the size test
needs no text), exact flat search (the baseline) against HNSW; then, when `shipyard optimize RUN` has exported the
search encoder, its ONNX (and int8) forms against torch (the baseline): quality on the same queries, cosine with
torch's vectors and per-query embedding latency (one query at a time, as /search sees them unbatched).

The fine-tuned run comes from `shipyard train examples/support_retrieval.yaml --run-dir RUN`; its test split
(20 % of each intent's queries, seed 0) is the held-out set, scored against the whole collection of distinct
responses. A hit is a response written for the query's intent.

    .venv/bin/python bench/retrieval.py --run RUN [--synthetic 100000] [--queries 1000] [--no-index]
    .venv/bin/python bench/retrieval.py --run RUN --baselines-on OTHER_RUN/splits/test.parquet

The held-out-intents run (`examples/support_retrieval_groups.yaml`: 5 intents never trained on) goes through the
same script; its test queries all belong to the held-out intents.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from shipyard.config.models import BiEncoderParams
from shipyard.config.retrieval import IndexConfig
from shipyard.evaluation.retrieval import ranking_metrics
from shipyard.models.biencoder import build_biencoder
from shipyard.models.search_index import PassageIndex
from shipyard.models.searcher import Searcher
from shipyard.spec import InputSpec

KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def score(found: list[list[int]], groups: dict[int, str], queries: pd.DataFrame, counts: pd.Series) -> dict:
    hits = np.zeros((len(queries), 10), dtype=bool)
    for qi, (row, group) in enumerate(zip(found, queries["group"], strict=True)):
        for r, pid in enumerate(row[:10]):
            hits[qi, r] = groups[pid] == group
    return ranking_metrics(hits, queries["group"].map(counts).to_numpy(), (1, 5, 10))


def quality(run: Path) -> dict[str, dict]:
    searcher = Searcher.load(run, encoder="torch")
    test = pd.read_parquet(run / "splits" / "test.parquet")
    passages = searcher.index.passages
    groups = {pid: p["group"] for pid, p in passages.items()}
    counts = pd.Series([p["group"] for p in passages.values()]).value_counts()
    queries = test["query"].tolist()
    out: dict[str, dict] = {}
    started = time.perf_counter()
    out["bm25"] = score([[i for i, _ in r] for r in searcher.index.bm25_search(queries, 10)], groups, test, counts)
    # frozen MiniLM: the same tokenizer and pooling, weights as published; its own flat index over the collection
    frozen = build_biencoder(BiEncoderParams(), InputSpec(kind="text", n_outputs=0)).eval()
    frozen_searcher = Searcher(
        searcher.path, searcher.meta, frozen, PassageIndex(dim=frozen.dim, config=IndexConfig(kind="flat"))
    )
    ids = list(passages)
    emb = frozen_searcher.embed([passages[i]["text"] for i in ids], passages=True)
    frozen_searcher.index.add(ids, [passages[i]["text"] for i in ids], [groups[i] for i in ids], emb)
    out["frozen MiniLM"] = score(
        [[i for i, _ in r] for r in frozen_searcher.index.dense_search(frozen_searcher.embed(queries), 10)],
        groups,
        test,
        counts,
    )
    q = searcher.embed(queries)
    out["fine-tuned"] = score([[i for i, _ in r] for r in searcher.index.dense_search(q, 10)], groups, test, counts)
    out["hybrid"] = score(
        [[i for i, _ in r] for r in searcher.index.search(queries, q, 10, "hybrid")], groups, test, counts
    )
    logging.info("quality in %.0fs", time.perf_counter() - started)
    return out


def baselines(run: Path, split: Path) -> dict[str, dict]:
    """BM25 and frozen MiniLM on another split's test queries over ``run``'s collection (no fine-tuned model:
    e.g. the held-out-intents split of examples/support_retrieval_groups.yaml before its run is trained)."""
    searcher = Searcher.load(run, encoder="torch")
    test = pd.read_parquet(split)
    passages = searcher.index.passages
    groups = {pid: p["group"] for pid, p in passages.items()}
    counts = pd.Series(list(groups.values())).value_counts()
    queries = test["query"].tolist()
    out = {"bm25": score([[i for i, _ in r] for r in searcher.index.bm25_search(queries, 10)], groups, test, counts)}
    frozen = build_biencoder(BiEncoderParams(), InputSpec(kind="text", n_outputs=0)).eval()
    index = PassageIndex(dim=frozen.dim, config=IndexConfig(kind="flat"))
    frozen_searcher = Searcher(searcher.path, searcher.meta, frozen, index)
    ids = list(passages)
    texts = [passages[i]["text"] for i in ids]
    index.add(ids, texts, [groups[i] for i in ids], frozen_searcher.embed(texts, passages=True))
    found = index.dense_search(frozen_searcher.embed(queries), 10)
    out["frozen MiniLM"] = score([[i for i, _ in r] for r in found], groups, test, counts)
    out["held-out groups"] = sorted(test["group"].unique())  # type: ignore[assignment]
    return out


def encoder_speed(run: Path, n_queries: int) -> dict[str, dict]:
    """torch (the baseline) against the exported ONNX encoder(s): quality, agreement and per-query latency."""
    from shipyard.models.searcher import ONNX_DIR, ONNX_META

    record_path = run / "model" / ONNX_DIR / ONNX_META
    if not record_path.is_file():
        logging.info("no exported encoder in %s: run `shipyard optimize %s` first", run, run)
        return {}
    record = json.loads(record_path.read_text(encoding="utf-8"))
    base = Searcher.load(run, encoder="torch")
    test = pd.read_parquet(run / "splits" / "test.parquet")
    passages = base.index.passages
    groups = {pid: p["group"] for pid, p in passages.items()}
    counts = pd.Series([p["group"] for p in passages.values()]).value_counts()
    queries = test["query"].tolist()
    reference = base.embed(queries)
    out: dict[str, dict] = {}
    for kind, name in [("torch", "torch"), ("onnx", "fp32"), ("int8", "int8")]:
        if kind != "torch" and not (record["files"].get(name) or {}).get("file"):
            continue
        searcher = base if kind == "torch" else Searcher.load(run, encoder=kind)  # type: ignore[arg-type]
        emb = searcher.embed(queries)
        row = score([[i for i, _ in r] for r in base.index.dense_search(emb, 10)], groups, test, counts)
        row["cosine_min"] = float((emb * reference).sum(axis=1).min())
        times = []
        for text in queries[:n_queries]:
            t = time.perf_counter()
            searcher.embed([text])
            times.append((time.perf_counter() - t) * 1000)
        row["p50_ms"] = round(statistics.median(times), 2)
        row["p99_ms"] = round(float(np.percentile(times, 99)), 2)
        row["served"] = name == record["serve"] if kind != "torch" else not record.get("serve")
        out[kind] = row
    return out


def index_speed(n: int, dim: int, n_queries: int) -> dict[str, dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[rng.choice(n, n_queries, replace=False)] + 0.05 * rng.normal(size=(n_queries, dim)).astype(np.float32)
    out = {}
    exact_top = None
    for kind in ("flat", "hnsw"):
        index = PassageIndex(dim=dim, config=IndexConfig(kind=kind))
        t0 = time.perf_counter()
        index.add(list(range(n)), [""] * n, ["g"] * n, x)
        build = time.perf_counter() - t0
        times, tops = [], []
        for qv in queries:
            t = time.perf_counter()
            tops.append(index.dense_search(qv[None, :], 10)[0])
            times.append((time.perf_counter() - t) * 1000)
        top1 = [r[0][0] for r in tops]
        if exact_top is None:
            exact_top = top1
        out[kind] = {
            "build_s": round(build, 1),
            "p50_ms": round(statistics.median(times), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3),
            "top1_agrees_with_flat": round(float(np.mean([a == b for a, b in zip(top1, exact_top, strict=True)])), 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-index", action="store_true", help="Skip the synthetic index-size test.")
    parser.add_argument("--encoder-queries", type=int, default=300, help="Queries timed per encoder.")
    parser.add_argument("--baselines-on", type=Path, help="Only BM25 and frozen on this split's test.parquet.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    if args.baselines_on:
        print(json.dumps(baselines(args.run, args.baselines_on)))
        return
    result = {
        "quality": quality(args.run),
        "encoders": encoder_speed(args.run, args.encoder_queries),
        "index": {} if args.no_index else index_speed(args.synthetic, 384, args.queries),
    }
    print(f"{'ranking':<16}" + "".join(f"{k:>11}" for k in KEYS))
    for name, m in result["quality"].items():
        print(f"{name:<16}" + "".join(f"{m[k]:>11.3f}" for k in KEYS))
    q = result["quality"]
    best = max(q["bm25"]["recall@1"], q["frozen MiniLM"]["recall@1"])
    print(
        f"fine-tuned R@1 - best of BM25/frozen = {100 * (q['fine-tuned']['recall@1'] - best):+.1f} points "
        f"(ratio {q['fine-tuned']['recall@1'] / best:.3f}); test queries: {q['fine-tuned']['queries']}"
    )
    torch_row = result["encoders"].get("torch")
    for kind, m in result["encoders"].items():
        print(
            f"encoder {kind:<6} R@1 {m['recall@1']:.3f}  MRR@10 {m['mrr@10']:.3f}  cosine with torch >= "
            f"{m['cosine_min']:.4f}  p50 {m['p50_ms']} ms  p99 {m['p99_ms']} ms  "
            f"p50 / torch {m['p50_ms'] / torch_row['p50_ms']:.2f}" + ("  (served)" if m["served"] else "")
        )
    for kind, m in result["index"].items():
        print(
            f"{args.synthetic:,} synthetic passages, {kind}: p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms, "
            f"build {m['build_s']} s, top-1 agreement with flat {m['top1_agrees_with_flat']}"
        )
    if result["index"]:
        flat, hnsw = result["index"]["flat"], result["index"]["hnsw"]
        print(f"HNSW / flat p50 = {hnsw['p50_ms'] / flat['p50_ms']:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
