"""Pickers for the labelling queue that do not trust the old model's uncertainty alone (#14).

Under a population shift the served model's uncertainty is measured in the old domain: it is confidently wrong on
much of the new population, so "least sure first" points at the wrong items (measured in
``bench/loop_active.py``). These pickers lean on the new population's own structure instead:

- :func:`typical_picks` ("TypiClust"-like, for a cold start): k-means with ``n`` clusters on the embeddings, and
  from each cluster its most *typical* item (highest density: smallest mean distance to its nearest neighbours),
  biggest clusters first. It needs no model at all, so it is what a first round of labels should be.
- :func:`badge_picks` (BADGE): k-means++ seeding on gradient embeddings, i.e. each item's vector scaled by how
  much the last layer's loss would move if it were labelled with the predicted class; picks are uncertain *and*
  spread out, with no pool cut-off. The queue only keeps the top probability and label, so the gradient is the
  top-1 approximation ``(1 - p1) * x`` placed in the predicted class's block (exact for two classes up to sign).
- :func:`balanced_picks`: class-balanced uncertainty: the budget split evenly over the predicted classes, the
  queue's margin + diversity within each, so a shift that the model reads as "everything is positive" still
  gets negatives.

All return positions into the given arrays, in queue order, and are deterministic for a given ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _kmeans_labels(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans  # imported on use: only these pickers need it

    if len(vectors) > 5000:  # full k-means on a large log is minutes; mini-batch is close enough for picking
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=1)
    return model.fit_predict(vectors)


def typicality(vectors: np.ndarray, neighbours: int = 20) -> np.ndarray:
    """Inverse mean distance to each row's ``neighbours`` nearest other rows (higher = more typical)."""
    if len(vectors) <= 1:
        return np.ones(len(vectors))
    k = min(neighbours, len(vectors) - 1)
    squared = (vectors**2).sum(axis=1)
    dist = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * vectors @ vectors.T, 0.0))
    np.fill_diagonal(dist, np.inf)
    nearest = np.partition(dist, k - 1, axis=1)[:, :k]
    return 1.0 / (nearest.mean(axis=1) + 1e-12)


def typical_picks(vectors: np.ndarray, n: int, *, seed: int = 0, neighbours: int = 20) -> list[int]:
    """One most-typical item from each of ``n`` k-means clusters, the biggest clusters first."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = min(n, len(vectors))
    if n <= 0:
        return []
    labels = _kmeans_labels(vectors, n, seed) if n > 1 else np.zeros(len(vectors), dtype=int)
    sizes = np.bincount(labels, minlength=n)
    picks: list[int] = []
    for cluster in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(labels == cluster)
        if len(members) == 0:
            continue
        picks.append(int(members[np.argmax(typicality(vectors[members], neighbours))]))
    if len(picks) < n:  # empty clusters (duplicates in the log): fill with the most typical of the rest
        rest = np.setdiff1d(np.arange(len(vectors)), picks)
        order = rest[np.argsort(-typicality(vectors[rest], neighbours), kind="stable")]
        picks.extend(int(i) for i in order[: n - len(picks)])
    return picks


def gradient_embedding(vectors: np.ndarray, confidence: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """BADGE's last-layer gradient for the predicted label, top-1 approximation: ``(1 - p1) x`` in its block."""
    vectors = np.asarray(vectors, dtype=np.float64)
    classes, index = np.unique(np.asarray(predicted).astype(str), return_inverse=True)
    out = np.zeros((len(vectors), len(classes) * vectors.shape[1]))
    scale = 1.0 - np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=1.0)
    width = vectors.shape[1]
    for row, block in enumerate(index):
        out[row, block * width : (block + 1) * width] = scale[row] * vectors[row]
    return out


def kmeans_pp(vectors: np.ndarray, n: int, *, seed: int = 0) -> list[int]:
    """k-means++ seeding: the first pick the largest vector, then each next with probability ~ squared distance."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = min(n, len(vectors))
    if n <= 0:
        return []
    rng = np.random.default_rng(seed)
    picks = [int(np.argmax(np.linalg.norm(vectors, axis=1)))]
    nearest = ((vectors - vectors[picks[0]]) ** 2).sum(axis=1)
    while len(picks) < n:
        total = nearest.sum()
        if total <= 0.0:  # all remaining rows coincide with a pick: take them in order
            rest = [i for i in range(len(vectors)) if i not in set(picks)]
            picks.extend(rest[: n - len(picks)])
            break
        nxt = int(rng.choice(len(vectors), p=nearest / total))
        picks.append(nxt)
        nearest = np.minimum(nearest, ((vectors - vectors[nxt]) ** 2).sum(axis=1))
    return picks


def badge_picks(
    vectors: np.ndarray, confidence: np.ndarray, predicted: np.ndarray, n: int, *, seed: int = 0
) -> list[int]:
    """BADGE: k-means++ on gradient embeddings (uncertain and diverse in one step)."""
    return kmeans_pp(gradient_embedding(vectors, confidence, predicted), n, seed=seed)


def balanced_shares(sizes: list[int], n: int) -> list[int]:
    """Split ``n`` evenly over classes of these sizes; a class with too few rows gives its rest to the others."""
    shares = [0] * len(sizes)
    left = min(n, sum(sizes))
    while left > 0:
        open_ = [c for c, size in enumerate(sizes) if shares[c] < size]
        each = max(left // len(open_), 1)
        for c in open_:
            add = min(each, sizes[c] - shares[c], left)
            shares[c] += add
            left -= add
    return shares


def balanced_picks(predicted: np.ndarray, n: int, within: Callable[[np.ndarray, int], list[int]]) -> list[int]:
    """Class-balanced picks: ``n`` split evenly over the predicted classes, ``within(rows, share)`` picking inside
    each (the queue passes margin + diversity), interleaved class by class in queue order."""
    predicted = np.asarray(predicted).astype(str)
    groups = [np.flatnonzero(predicted == c) for c in np.unique(predicted)]
    shares = balanced_shares([len(g) for g in groups], n)
    per_class = [within(rows, share) if share else [] for rows, share in zip(groups, shares, strict=True)]
    picks: list[int] = []
    for depth in range(max((len(p) for p in per_class), default=0)):
        picks.extend(p[depth] for p in per_class if depth < len(p))
    return picks
