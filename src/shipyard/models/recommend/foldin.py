"""Fold-in: a user's vector from their events with the item vectors fixed, in closed form (no retraining).

- explicit ratings: ridge regression of ``r - mu - b_i`` on ``[q_i, 1]`` (the user's factors and bias);
- implicit events: the one-user step of implicit ALS (Hu, Koren, Volinsky 2008), preference 1 on the user's items
  with confidence ``1 + alpha * w`` and 0 elsewhere, so unobserved items pull the vector too.

A user's vector from a few events is what the served model uses for a new or updated user at once.
"""

from __future__ import annotations

import numpy as np


def fold_in_explicit(
    q: np.ndarray, item_bias: np.ndarray, mu: float, items: np.ndarray, ratings: np.ndarray, *, reg: float
) -> tuple[np.ndarray, float]:
    """(p_u, b_u) minimising ``sum (r - mu - b_i - b_u - p.q_i)^2 + reg * n * (|p|^2 + b_u^2)``."""
    items = np.asarray(items, dtype=np.int64)
    dim = q.shape[1]
    if len(items) == 0:
        return np.zeros(dim, dtype=np.float32), 0.0
    x = np.concatenate([q[items], np.ones((len(items), 1), dtype=q.dtype)], axis=1).astype(np.float64)
    y = np.asarray(ratings, dtype=np.float64) - mu - item_bias[items]
    a = x.T @ x + reg * len(items) * np.eye(dim + 1)
    sol = np.linalg.solve(a, x.T @ y)
    return sol[:dim].astype(np.float32), float(sol[dim])


def fold_in_implicit(
    q: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    reg: float = 0.1,
    alpha: float = 10.0,
    gram: np.ndarray | None = None,
) -> np.ndarray:
    """``p = (Q^T Q + alpha Q_S^T W Q_S + reg I)^-1 Q_S^T (1 + alpha w)``, the implicit-ALS user step.

    ``gram`` is ``Q^T Q`` when the caller keeps it (the served model does: it is the same for every user)."""
    items = np.asarray(items, dtype=np.int64)
    dim = q.shape[1]
    if len(items) == 0:
        return np.zeros(dim, dtype=np.float32)
    w = np.ones(len(items)) if weights is None else np.asarray(weights, dtype=np.float64)
    qd = q.astype(np.float64)
    qs = qd[items]
    a = (qd.T @ qd if gram is None else gram) + alpha * (qs * w[:, None]).T @ qs + reg * np.eye(dim)
    b = qs.T @ (1.0 + alpha * w)
    return np.linalg.solve(a, b).astype(np.float32)
