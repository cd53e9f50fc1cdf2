"""Baselines every recommender must beat: popularity and item-kNN.

- ``Popularity``: items ordered by how many training users interacted with them (the fallback for unknown users).
- ``ItemKNN``: cosine similarity between items' user columns, each item keeping its ``neighbours`` most similar
  items, with a shrinkage term (``sim = dot / (|a||b| + shrink)``) so pairs seen by few users count less; a
  user's score for an item is the sum of its similarities to the user's items (Sarwar et al. 2001).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


class Popularity:
    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.counts = np.zeros(n_items, dtype=np.float32)

    def fit(self, matrix: sparse.csr_matrix) -> Popularity:
        self.counts = np.asarray((matrix > 0).sum(axis=0), dtype=np.float32).reshape(-1)
        return self

    def scores(self, n_rows: int) -> np.ndarray:
        return np.broadcast_to(self.counts, (n_rows, self.n_items))

    def ranked(self) -> np.ndarray:
        return np.argsort(-self.counts, kind="stable")


class ItemKNN:
    def __init__(self, *, neighbours: int = 100, shrink: float = 10.0) -> None:
        self.neighbours, self.shrink = neighbours, shrink
        self.similarity: sparse.csr_matrix | None = None

    def fit(self, matrix: sparse.csr_matrix) -> ItemKNN:
        x = (matrix > 0).astype(np.float32).tocsc()
        dots = (x.T @ x).toarray()
        norms = np.sqrt(np.diag(dots))
        sim = dots / (np.outer(norms, norms) + self.shrink)
        np.fill_diagonal(sim, 0.0)
        k = min(self.neighbours, sim.shape[1] - 1)
        if k > 0:
            drop = np.argpartition(-sim, k, axis=1)[:, k:]  # keep each row's k largest
            np.put_along_axis(sim, drop, 0.0, axis=1)
        self.similarity = sparse.csr_matrix(sim.astype(np.float32))
        return self

    def scores(self, history: sparse.csr_matrix) -> np.ndarray:
        """(users, items) scores from each user's history row."""
        assert self.similarity is not None, "fit first"
        return np.asarray((history > 0).astype(np.float32) @ self.similarity.T.toarray())
