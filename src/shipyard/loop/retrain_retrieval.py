"""`shipyard retrain RUN` for a `task: retrieval` run: a challenger trained on the parent's training pairs plus
the query -> passage pairs people gave (:mod:`shipyard.loop.pairs`), as a new run linked to its parent.

The parent's stored splits are the starting point (``splits/*.parquet``: query, passage, group, passage_id). The
challenger's source is those rows plus the feedback pairs, each row naming its split (``retrieval.split.held_out:
given``), so it validates and tests on exactly the parent's held-out queries. The rows are staged ordered by the
parent's passage id, so the challenger's collection numbers the parent's passages the same way (the ids the
support app stored keep meaning the same passage); a fed-back passage added to the parent's index after training
gets the next id. The job is the parent's ``config.yaml`` with only the source, the split mode and the run name
changed.

A feedback pair whose passage is not in the parent's index is an error naming the pair and the passage (nothing
is trained). Two kinds of pair are left out, counted in ``pairs``, never silently: a query that is one of the
parent's validation or test queries (training on it would score the challenger on what it learnt), and, when the
parent held out whole groups, a passage of a held-out group (it would no longer be unseen). The staged file is
owner-only and removed when the run ends; the new run's ``splits/train.parquet`` then holds the pairs, where
``shipyard data forget`` reaches them.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_parquet
from shipyard.loop.lineage import link_retrain, run_id_of
from shipyard.loop.pairs import feedback_pairs, passage_collection
from shipyard.loop.store import LoopStore

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_COLUMN = "_split"


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def feedback_training_rows(
    pairs: pd.DataFrame, model_dir: Path, splits: dict[str, pd.DataFrame], *, where: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The pairs as training rows (query, passage, group, passage_id) and what was left out and why."""
    counts = {"pairs": len(pairs), "used": 0, "same_as_held_out_query": 0, "held_out_group": 0}
    columns = ["query", "passage", "group", "passage_id"]
    if pairs.empty:
        return pd.DataFrame(columns=columns), counts
    collection = passage_collection(model_dir)
    rows = []
    held_queries = {_norm(q) for s in ("validation", "test") for q in splits[s]["query"]}
    trained_groups = set(splits["train"]["group"]) | set(splits["validation"]["group"])
    test_only = set(splits["test"]["group"]) - trained_groups
    for pair in pairs.itertuples():
        try:
            pid = int(pair.passage_id)
        except (TypeError, ValueError):
            pid = None
        if pid is None or pid not in collection:
            raise ShipyardError(
                f"feedback pair {pair.prediction_id} names passage {pair.passage_id!r}, which is not in the parent's "
                f"passage collection ({len(collection)} passages)",
                where=f"{where}, prediction {pair.prediction_id}",
                hint=f"erase the pair (shipyard data forget RUN --where \"prediction_id == '{pair.prediction_id}'\") "
                "or add the passage to the index, then retrain",
            )
        passage = collection[pid]
        if _norm(pair.query) in held_queries:
            counts["same_as_held_out_query"] += 1
            continue
        if passage["group"] in test_only:
            counts["held_out_group"] += 1
            continue
        rows.append((str(pair.query), passage["text"], passage["group"], pid))
    counts["used"] = len(rows)
    return pd.DataFrame(rows, columns=columns), counts


def retrain_retrieval(  # long: the staged source, the run and its links, in order
    run_dir: Path,
    *,
    store: LoopStore | None,
    with_feedback: bool = True,
    since: float | None = None,
    model: str | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train the challenger; returns ``{"run_id", "run_dir", "parent", "feedback_rows", "pairs", "metrics"}``."""
    from shipyard.pipeline import load_run_job, run_job  # heavy (torch): only when a run is trained

    job, base_dir = load_run_job(run_dir)
    cfg = job.retrieval
    assert cfg is not None
    parent_id = run_id_of(run_dir)
    missing = [s for s in SPLITS if not (run_dir / "splits" / f"{s}.parquet").is_file()]
    if missing:
        raise ShipyardError(f"the run keeps no {', '.join(missing)} split", where=str(run_dir / "splits"))
    splits = {s: pd.read_parquet(run_dir / "splits" / f"{s}.parquet") for s in SPLITS}
    pairs = pd.DataFrame(columns=["query", "passage_id", "prediction_id", "feedback_at"])
    if with_feedback:
        if store is None:
            raise ShipyardError("--with-feedback needs the loop store", where="retrain")
        pairs = feedback_pairs(store, model, since=since, under=None if model else run_dir)
    extra, counts = feedback_training_rows(pairs, run_dir / "model", splits, where="loop feedback")
    logger.info("retrain %s: %d training pairs + %d feedback pairs (%s)", parent_id, len(splits["train"]),
                len(extra), counts)  # fmt: skip
    parent = pd.concat([splits[s].assign(**{SPLIT_COLUMN: s}) for s in SPLITS], ignore_index=True)
    parent = parent.sort_values("passage_id", kind="stable")  # the collection keeps the parent's passage ids
    rows = pd.concat([parent, extra.assign(**{SPLIT_COLUMN: "train"})], ignore_index=True)
    staged = pd.DataFrame(
        {
            cfg.query_column: rows["query"].astype(str),
            cfg.passage_column: rows["passage"].astype(str),
            cfg.group_column: rows["group"].astype(str),
            SPLIT_COLUMN: rows[SPLIT_COLUMN],
        }
    )
    staging = run_dir.parent / ".retrain" / f"{parent_id}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True, mode=0o700)
        path = atomic_write_parquet(staging / "pairs.parquet", staged, private=True)
        raw = job.model_dump()
        raw["data"]["source"] = {"path": str(path), "format": "parquet"}
        split = raw["retrieval"]["split"]
        raw["retrieval"]["split"] = {**split, "held_out": "given", "split_column": SPLIT_COLUMN}
        output = dict(raw.get("output") or {})
        parent_name = output.get("name") or job.name or parent_id
        output.update(runs_root=str(run_dir.parent), run_dir=None, name=f"{parent_name}-retrain")
        raw["output"] = output
        result = run_job(type(job).model_validate(raw), base_dir=base_dir, show_progress=show_progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    until = float(pairs["feedback_at"].max()) if len(pairs) else None
    return link_retrain(result, parent_id, len(extra), until) | {"pairs": counts}
