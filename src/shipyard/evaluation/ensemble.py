"""Greedy ensemble selection (Caruana, Niculescu-Mizil, Crew & Ksikes, ICML 2004) on validation predictions.

Start from the best single model, then, ``rounds`` times, add (with replacement) the model whose inclusion makes
the averaged validation predictions best; a model's weight is how often it was picked. Selection with
replacement keeps the hill climb from overfitting a small validation split as plain forward selection does.
Classification averages probabilities and scores log loss (smoother than accuracy, so ties are rare);
regression averages values and scores squared error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-12


@dataclass
class Selection:
    weights: list[float]  # per model, summing to 1
    counts: list[int]
    history: list[float]  # the validation loss after each pick
    best_single: int


def _loss(pred: np.ndarray, y: np.ndarray, task: str) -> float:
    if task == "classification":
        p = np.clip(pred[np.arange(len(y)), y], EPS, 1.0)
        return float(-np.log(p).mean())
    return float(np.mean((pred.reshape(len(y)) - y) ** 2))


def greedy_selection(predictions: list[np.ndarray], y: np.ndarray, task: str, rounds: int = 25) -> Selection:
    """``predictions``: per model, validation probabilities (N, K) or values (N,); ``y``: class indices or values."""
    if not predictions:
        raise ValueError("no models to select from")
    y = np.asarray(y)
    if task == "classification":
        y = y.astype(np.int64)
    preds = [np.asarray(p, dtype=np.float64) for p in predictions]
    singles = [_loss(p, y, task) for p in preds]
    best = int(np.argmin(singles))
    counts = [0] * len(preds)
    counts[best] = 1
    total = preds[best].copy()
    history = [singles[best]]
    for _ in range(max(rounds - 1, 0)):
        n = sum(counts)
        trial = [_loss((total + p) / (n + 1), y, task) for p in preds]
        pick = int(np.argmin(trial))  # ties: the lower index, i.e. the earlier (cheaper) candidate
        counts[pick] += 1
        total += preds[pick]
        history.append(trial[pick])
    n = sum(counts)
    return Selection(weights=[c / n for c in counts], counts=counts, history=history, best_single=best)


def combine(predictions: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The weighted average of the members' probabilities (or values)."""
    out = None
    for p, w in zip(predictions, weights, strict=True):
        if w:
            part = np.asarray(p, dtype=np.float64) * w
            out = part if out is None else out + part
    if out is None:
        raise ValueError("every ensemble weight is zero")
    return out
