"""Ranking metrics for `task: retrieval`: Recall@k, MRR@10 and nDCG@10 with binary relevance (a passage is
relevant when it was written for the query's group), plus the engine's per-epoch metrics and the report section.

Recall@k here is the share of queries with at least one relevant passage in the top k (the success rate; with
many relevant passages per intent the fraction-of-all-relevant version would be near zero and say little).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from shipyard.evaluation.report import ReportSection


def ranking_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, cutoffs: list[int] | tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """``hits`` (Q, K) bool: is the passage at rank r relevant; ``n_relevant`` (Q,): relevant passages per query."""
    hits = np.asarray(hits, dtype=bool)
    q = hits.shape[0]
    if q == 0:
        return {}
    out: dict[str, float] = {}
    for k in cutoffs:
        out[f"recall@{k}"] = float(hits[:, :k].any(axis=1).mean())
    top = hits[:, :10]
    first = np.where(top.any(axis=1), top.argmax(axis=1) + 1, 0)
    out["mrr@10"] = float(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0).mean())
    discounts = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    dcg = (top * discounts).sum(axis=1)
    ideal = np.array([discounts[: min(int(r), top.shape[1])].sum() for r in n_relevant])
    out["ndcg@10"] = float(np.where(ideal > 0, dcg / np.maximum(ideal, 1e-12), 0.0).mean())
    out["queries"] = int(q)
    return out


def in_split_metrics(task: str, target: np.ndarray, outputs: np.ndarray, labels: list[str] | None) -> dict[str, Any]:
    """The engine's per-epoch metrics: each query ranks the split's own passages (query | passage embeddings)."""
    dim = outputs.shape[1] // 2  # validation rows carry no hard negative: query | passage
    query, docs = outputs[:, :dim], outputs[:, dim : 2 * dim]
    target = np.asarray(target)
    order = np.argsort(-(query @ docs.T), axis=1)[:, :10]
    hits = target[order] == target[:, None]
    counts = np.bincount(target, minlength=int(target.max()) + 1)[target]
    return ranking_metrics(hits, counts)


def report_section(metrics: dict[str, Any], summary: dict[str, Any]) -> ReportSection:
    """Held-out retrieval figures per split and ranking, as one report section."""
    rows = []
    for split in ("validation", "test"):
        for ranking, values in (metrics.get(split) or {}).items():
            if not isinstance(values, dict):
                continue
            cells = "".join(
                f"<td>{values.get(k, float('nan')):.3f}</td>"
                for k in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
            )
            rows.append(f"<tr><td>{split}</td><td>{html.escape(ranking)}</td>{cells}</tr>")
    splits = summary.get("splits", {})
    sizes = ", ".join(f"{k}: {v['queries']} queries / {v['groups']} groups" for k, v in splits.items())
    body = (
        f"<p>{summary.get('passages', 0)} passages indexed; held out by {html.escape(str(summary.get('held_out')))}"
        f" ({html.escape(sizes)}). A hit is a passage written for the query's group.</p>"
        "<table><tr><th>split</th><th>ranking</th><th>R@1</th><th>R@5</th><th>R@10</th><th>MRR@10</th>"
        f"<th>nDCG@10</th></tr>{''.join(rows)}</table>"
    )
    return ReportSection(title="Retrieval", html=body)
