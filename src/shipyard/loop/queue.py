"""The labelling queue: which logged inputs are worth a person's time (active learning).

Selection is "uncertainty, then diversity": the ``pool_factor * n`` logged predictions the model was least sure
of (smallest margin between its top two probabilities, or lowest top probability) form a pool, and k-center
greedy picks ``n`` of them that cover the pool (each pick is the pool item farthest from everything already
picked, starting from the most uncertain one). Distances are on the model's own encoded inputs (tabular: the
preprocessed feature vector) or on MiniLM sentence embeddings (text), so the queue is not ``n`` rephrasings of
one confusing input. Regression models have no class probabilities: their queue is diversity alone.

People answer through the dashboard (label, skip, undo) or a CSV round trip (:func:`export_csv` /
:func:`import_csv`); every answer is ordinary feedback (``source = queue``), checked like any other.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_text
from shipyard.loop.drift import embed_texts
from shipyard.loop.feedback import FeedbackItem, import_feedback_records, record_feedback
from shipyard.loop.picking import badge_picks, balanced_picks, typical_picks
from shipyard.loop.predlog import input_columns, load_predictions, rows_to_frame
from shipyard.loop.store import LoopStore, feedback, predictions, queue

logger = logging.getLogger(__name__)
PICKERS = ("typical", "badge", "balanced")  # in loop/picking.py: they need the vectors, not a pool cut-off

STRATEGIES = ("margin", "least_confidence", "random", "typical", "badge", "balanced", "cold_start")
# ``cold_start``: typical picks (no trust in the model) until this many of the model's inputs carry feedback,
# margin + diversity after that (by then the served model should be a retrain that has seen those labels)
COLD_START_LABELS = 100


def uncertainty(frame: pd.DataFrame, strategy: str) -> np.ndarray:
    """Higher = less sure. ``margin``: 1 - (p1 - p2); ``least_confidence``: 1 - p1."""
    if strategy == "margin":
        return 1.0 - frame["_margin"].astype(float).fillna(1.0).to_numpy()
    if strategy == "least_confidence":
        return 1.0 - frame["_confidence"].astype(float).fillna(1.0).to_numpy()
    raise ShipyardError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}", where="--strategy")


def k_center_greedy(vectors: np.ndarray, n: int, first: int = 0) -> list[int]:
    """``n`` row indices that cover ``vectors``: each next pick is the row farthest from those picked."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = min(n, len(vectors))
    if n <= 0:
        return []
    picked = [first]
    nearest = np.linalg.norm(vectors - vectors[first], axis=1)
    while len(picked) < n:
        nxt = int(np.argmax(nearest))
        if nearest[nxt] <= 0.0:  # only exact duplicates remain: take them in order of the pool
            rest = [i for i in range(len(vectors)) if i not in set(picked)]
            picked.extend(rest[: n - len(picked)])
            break
        picked.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return picked


def select(
    frame: pd.DataFrame,
    n: int,
    vectors: np.ndarray | None,
    *,
    strategy: str = "margin",
    pool_factor: int = 5,
    seed: int = 0,
    labelled: int = 0,
) -> tuple[list[int], np.ndarray]:
    """Positions in ``frame`` to queue, in queue order, and every row's uncertainty score.

    ``labelled``: how many of the model's inputs already carry feedback (only ``cold_start`` looks at it).
    """
    if strategy not in STRATEGIES:
        raise ShipyardError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}", where="--strategy")
    if strategy == "random":
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(frame))[:n]
        return [int(i) for i in order], np.zeros(len(frame))
    if strategy == "cold_start":
        strategy = "typical" if labelled < COLD_START_LABELS else "margin"
    has_proba = frame["_margin"].notna().any()
    scores = uncertainty(frame, "margin" if strategy in PICKERS else strategy) if has_proba else np.zeros(len(frame))
    if strategy in PICKERS and n < len(frame):
        if vectors is None:
            raise ShipyardError(f"strategy {strategy!r} needs the inputs' vectors", where="--strategy")
        if strategy == "typical" or not has_proba:
            return typical_picks(vectors, n, seed=seed), scores
        predicted = frame["_label"].astype(str).to_numpy()
        if strategy == "badge":
            confidence = frame["_confidence"].astype(float).to_numpy()
            return badge_picks(vectors, confidence, predicted, n, seed=seed), scores

        def within(rows: np.ndarray, share: int) -> list[int]:  # margin + diversity inside one predicted class
            part, _ = select(frame.iloc[rows], share, vectors[rows], strategy="margin", pool_factor=pool_factor)
            return [int(rows[i]) for i in part]

        return balanced_picks(predicted, n, within), scores
    pool = np.argsort(-scores, kind="stable")[: max(n * pool_factor, n)]
    if vectors is None or len(pool) <= n:
        return [int(i) for i in pool[:n]], scores
    chosen = k_center_greedy(vectors[pool], n, first=0)  # pool[0] is the most uncertain
    return [int(pool[i]) for i in chosen], scores


def encode_for_diversity(model_path: str, frame: pd.DataFrame, embed: Any = None) -> np.ndarray:
    """The space distances are measured in: the model's preprocessed inputs, or sentence embeddings for text."""
    from shipyard.artifact import Artifact  # heavy (torch): only when a queue is built

    artifact = Artifact.load(model_path)
    text = [f["name"] for f in artifact.features if f.get("type") == "text"]
    if text:
        joined = frame[text].astype(str).agg(" ".join, axis=1).tolist()
        return np.asarray((embed or embed_texts)(joined))
    inputs = artifact.preprocessor.transform(frame[[f["name"] for f in artifact.features]])
    x = inputs.get("x")
    if x is None:
        raise ShipyardError("this model's inputs have no vector form to measure diversity in", where=model_path)
    return np.asarray(x, dtype=np.float64).reshape(len(frame), -1)


def labelled_count(store: LoopStore, model: str) -> int:
    """How many of the model's logged inputs carry feedback (what ``cold_start`` decides on)."""
    query = sa.select(sa.func.count(sa.distinct(feedback.c.prediction_id))).where(feedback.c.model == model)
    with store.connect() as conn:
        return int(conn.execute(query).scalar_one())


def candidates(store: LoopStore, model: str, *, since: float | None = None) -> pd.DataFrame:
    """Logged predictions with no feedback that are not queued already."""
    answered = sa.select(feedback.c.prediction_id)
    queued = sa.select(queue.c.prediction_id).where(queue.c.model == model)
    query = (
        sa.select(predictions)
        .where(predictions.c.model == model)
        .where(predictions.c.id.not_in(answered))
        .where(predictions.c.id.not_in(queued))
        .order_by(predictions.c.at)
    )
    if since is not None:
        query = query.where(predictions.c.at >= since)
    with store.connect() as conn:
        return rows_to_frame(conn.execute(query).mappings().all())


def build_queue(
    store: LoopStore,
    model: str,
    n: int,
    *,
    strategy: str = "margin",
    since: float | None = None,
    embed: Any = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Pick ``n`` logged inputs and append them to the model's queue; returns them in queue order."""
    if n < 1:
        raise ShipyardError(f"--n must be at least 1, got {n}", where="--n")
    pool = candidates(store, model, since=since)
    if pool.empty:
        logger.info("queue for %s: no unlabelled logged predictions", model)
        return pool
    vectors = None
    if strategy != "random" and len(pool) > n:
        vectors = encode_for_diversity(str(pool["_model_path"].iloc[0]), pool[input_columns(pool)], embed)
    labelled = labelled_count(store, model) if strategy == "cold_start" else 0
    order, scores = select(pool, n, vectors, strategy=strategy, seed=seed, labelled=labelled)
    picked = pool.iloc[order].copy()
    picked["_score"] = scores[order]
    with store.begin() as conn:
        start = conn.execute(sa.select(sa.func.coalesce(sa.func.max(queue.c.rank), 0)).where(queue.c.model == model))
        first = int(start.scalar_one()) + 1
        now = time.time()
        rows = [
            {"model": model, "prediction_id": pid, "rank": first + i, "score": float(s), "status": "queued", "at": now}
            for i, (pid, s) in enumerate(zip(picked["_id"], picked["_score"], strict=True))
        ]
        conn.execute(queue.insert(), rows)
    logger.info("queue for %s: %d items added (%s)", model, len(rows), strategy)
    return picked


def queued_items(store: LoopStore, model: str, *, status: str = "queued", limit: int | None = None) -> pd.DataFrame:
    query = (
        sa.select(queue.c.prediction_id, queue.c.rank, queue.c.score, queue.c.status)
        .where(queue.c.model == model, queue.c.status == status)
        .order_by(queue.c.rank)
    )
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    if not rows:
        return pd.DataFrame()
    frame = load_predictions(store, model, ids=[r["prediction_id"] for r in rows]).set_index("_id")
    order = [r["prediction_id"] for r in rows if r["prediction_id"] in frame.index]
    out = frame.loc[order].reset_index().rename(columns={"index": "_id"})
    meta = {r["prediction_id"]: r for r in rows}
    out["_rank"] = [meta[p]["rank"] for p in out["_id"]]
    out["_score"] = [meta[p]["score"] for p in out["_id"]]
    return out


def _set_status(store: LoopStore, model: str, prediction_id: str, status: str, conn: Any = None) -> None:
    statement = queue.update().where(queue.c.model == model, queue.c.prediction_id == prediction_id)
    if conn is not None:
        conn.execute(statement.values(status=status))
        return
    with store.begin() as own:
        own.execute(statement.values(status=status))


def label_item(store: LoopStore, model: str, prediction_id: str, label: str, *, actor: str) -> dict[str, Any]:
    row = record_feedback(store, FeedbackItem(prediction_id, label=label), actor=actor, source="queue", model=model)
    _set_status(store, model, prediction_id, "labelled")
    return row


def skip_item(store: LoopStore, model: str, prediction_id: str) -> None:
    _set_status(store, model, prediction_id, "skipped")


def undo_item(store: LoopStore, model: str, prediction_id: str) -> None:
    """Put a labelled or skipped item back in the queue; a label given through the queue is withdrawn."""
    with store.begin() as conn:
        conn.execute(
            feedback.delete().where(
                feedback.c.prediction_id == prediction_id, feedback.c.model == model, feedback.c.source == "queue"
            )
        )
        _set_status(store, model, prediction_id, "queued", conn)


def export_csv(store: LoopStore, model: str, path: str | Path) -> int:
    """The queued items as CSV (prediction_id, rank, score, prediction, confidence, inputs..., empty ``label``).

    The file holds logged (redacted) inputs, so it is written owner-only like every file of row-level data.
    """
    items = queued_items(store, model)
    if items.empty:
        raise ShipyardError(f"the queue of {model!r} is empty", where="label queue", hint="run `shipyard label queue`")
    inputs = input_columns(items)
    out = pd.DataFrame(
        {
            "prediction_id": items["_id"],
            "rank": items["_rank"],
            "score": items["_score"].round(4),
            "prediction": items["_label"],
            "confidence": items["_confidence"].round(4),
        }
    )
    for column in inputs:
        out[column] = items[column]
    out["label"] = ""
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL)
    atomic_write_text(Path(path), buffer.getvalue(), private=True)
    return len(out)


def import_csv(store: LoopStore, model: str, path: str | Path, *, actor: str) -> dict[str, Any]:
    """Import the labelled export: rows with an empty ``label`` are left in the queue; the rest all-or-nothing."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ShipyardError(f"cannot read the labelled queue: {exc}", where=str(path)) from None
    if "prediction_id" not in frame.columns or "label" not in frame.columns:
        raise ShipyardError("the file needs the columns prediction_id and label", where=f"{path}, row 1")
    records = [
        (number, {"prediction_id": pid, "label": label})
        for number, (pid, label) in enumerate(zip(frame["prediction_id"], frame["label"], strict=True), start=2)
        if label.strip()
    ]

    def mark_labelled(conn: Any, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            _set_status(store, model, row["prediction_id"], "labelled", conn)

    return import_feedback_records(
        store, records, where=str(path), actor=actor, source="queue", model=model, on_written=mark_labelled
    )
