"""Metrics for recommenders: rating error, ranking quality, and what the lists do to the catalogue.

- ``rating_metrics``: RMSE and MAE of predicted ratings.
- ``top_k``: each user's best ``k`` items from a score matrix, with items to exclude (those seen in training).
- ``ranking_metrics``: HR@k, NDCG@k, MAP@k and recall@k of top-k lists against each user's held-out items.
  **Full-catalogue** when the lists were ranked over every item (``top_k``); ``sampled_ranking_metrics`` ranks
  each held-out item against ``n_negatives`` sampled unseen items instead (the protocol of many papers, which
  overstates quality; reported as ``sampled_*``).
- ``beyond_accuracy``: catalogue coverage, novelty (mean self-information ``-log2 p(item)`` of recommended items,
  ``p`` = the item's share of training users), and popularity bias: the share of recommendation slots that go
  to the 10 % most popular items and the Gini coefficient of exposure over the catalogue; each overall and by
  user-activity bucket (terciles of training events per user).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse

ACTIVITY_BUCKETS = ("low", "mid", "high")


def rating_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    err = np.asarray(y_pred, dtype=np.float64).reshape(-1) - np.asarray(y_true, dtype=np.float64).reshape(-1)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def top_k(scores: np.ndarray, k: int, exclude: sparse.csr_matrix | None = None) -> np.ndarray:
    """(U, k) item indices, best first; ``exclude`` (U, I) non-zeros are never recommended."""
    s = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None:
        rows, cols = exclude.nonzero()
        s[rows, cols] = -np.inf
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ranking_metrics(topk: np.ndarray, relevant: Sequence[Sequence[int]], k: int) -> dict[str, float]:
    """Mean HR@k, NDCG@k, MAP@k, recall@k over users with at least one relevant item (full-catalogue lists)."""
    hr, ndcg, ap, rec = [], [], [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for row, rel in zip(topk[:, :k], relevant, strict=True):
        rel_set = set(int(r) for r in rel)
        if not rel_set:
            continue
        hits = np.fromiter((int(i) in rel_set for i in row), dtype=bool, count=len(row))
        n_rel = len(rel_set)
        hr.append(float(hits.any()))
        ideal = discounts[: min(n_rel, k)].sum()
        ndcg.append(float(discounts[: len(row)][hits].sum() / ideal))
        precision_at = np.cumsum(hits) / np.arange(1, len(row) + 1)
        ap.append(float((precision_at * hits).sum() / min(n_rel, k)))
        rec.append(float(hits.sum() / n_rel))
    if not hr:
        return {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, f"map@{k}": 0.0, f"recall@{k}": 0.0, "users": 0}
    return {
        f"hr@{k}": float(np.mean(hr)),
        f"ndcg@{k}": float(np.mean(ndcg)),
        f"map@{k}": float(np.mean(ap)),
        f"recall@{k}": float(np.mean(rec)),
        "users": len(hr),
    }


def sampled_ranking_metrics(
    score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    users: np.ndarray,
    targets: np.ndarray,
    seen: sparse.csr_matrix,
    n_items: int,
    *,
    k: int = 10,
    n_negatives: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """HR@k / NDCG@k of each (user, target) ranked among ``n_negatives`` sampled items the user has not seen.

    ``score_fn(users (N,), items (N, M)) -> (N, M)`` scores. Ties count against the target (pessimistic).
    """
    rng = np.random.default_rng(seed)
    cand = np.empty((len(users), n_negatives + 1), dtype=np.int64)
    cand[:, 0] = targets
    for row, u in enumerate(users):
        seen_u = set(seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist()) | {int(targets[row])}
        picks: list[int] = []
        while len(picks) < n_negatives:
            draw = rng.integers(0, n_items, size=2 * n_negatives)
            picks.extend(int(i) for i in draw if int(i) not in seen_u)
        cand[row, 1:] = picks[:n_negatives]
    scores = score_fn(users, cand)
    rank = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)  # 0 = the target beats every negative
    hit = rank < k
    return {
        f"sampled_hr@{k}": float(hit.mean()),
        f"sampled_ndcg@{k}": float(np.where(hit, 1.0 / np.log2(rank + 2), 0.0).mean()),
        "sampled_negatives": n_negatives,
    }


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: equal exposure; 1: one item gets everything)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * total))


def activity_buckets(user_events: np.ndarray) -> np.ndarray:
    """Each user's bucket (0 low, 1 mid, 2 high) by terciles of their number of training events."""
    counts = np.asarray(user_events, dtype=np.float64)
    if len(counts) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = np.quantile(counts, [1 / 3, 2 / 3])
    return np.where(counts <= lo, 0, np.where(counts <= hi, 1, 2)).astype(np.int64)


def _list_stats(topk: np.ndarray, item_users: np.ndarray, n_users: int) -> dict[str, float]:
    n_items = len(item_users)
    if topk.size == 0:
        return {"coverage": 0.0, "novelty": 0.0, "top10pct_share": 0.0, "exposure_gini": 0.0, "users": 0}
    exposure = np.bincount(topk.reshape(-1), minlength=n_items)
    p = np.maximum(item_users, 1) / max(n_users, 1)  # an item no one saw counts as seen once
    top_n = max(1, int(np.ceil(0.1 * n_items)))
    popular = np.argsort(-item_users, kind="stable")[:top_n]
    return {
        "coverage": float((exposure > 0).sum() / n_items),
        "novelty": float(np.mean(-np.log2(p[topk.reshape(-1)]))),
        "top10pct_share": float(exposure[popular].sum() / exposure.sum()),
        "exposure_gini": gini(exposure),
        "users": int(topk.shape[0]),
    }


def beyond_accuracy(topk: np.ndarray, train: sparse.csr_matrix, users: np.ndarray | None = None) -> dict[str, Any]:
    """Coverage, novelty and popularity bias of the lists ``topk`` (one row per user in ``users``)."""
    train = train.tocsr()
    users = np.arange(train.shape[0]) if users is None else np.asarray(users)
    item_users = np.asarray((train > 0).sum(axis=0)).reshape(-1)
    activity = np.diff(train.indptr)
    buckets = activity_buckets(activity)[users]
    out: dict[str, Any] = _list_stats(topk, item_users, train.shape[0])
    out["by_activity"] = {
        name: _list_stats(topk[buckets == b], item_users, train.shape[0]) for b, name in enumerate(ACTIVITY_BUCKETS)
    }
    return out


def interaction_matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int], values: Any = None) -> Any:
    """A (users, items) CSR matrix; duplicate pairs sum (binary when ``values`` is None: 1 per pair)."""
    data = np.ones(len(users), dtype=np.float32) if values is None else np.asarray(values, dtype=np.float32)
    m = sparse.csr_matrix((data, (np.asarray(users), np.asarray(items))), shape=shape)
    if values is None:
        m.data[:] = 1.0
    return m
