"""Champion / challenger for `task: retrieval` runs: both searchers rank the same queries against their own passage
collections, each with its configured ranking, and the per-query reciprocal rank (MRR@10) decides.

Slices, as for the other tasks (:mod:`shipyard.loop.compare`):
- ``holdout``: the champion run's own held-out queries (``splits/test.parquet``), a hit being any passage of the
  query's group; a challenger retrained with feedback (:mod:`shipyard.loop.retrain_retrieval`) tested on the same
  queries and never trained on them;
- ``feedback``: query -> passage pairs (:mod:`shipyard.loop.pairs`) that arrived after the challenger's training
  cut-off, a hit being a passage of the chosen passage's group.

Test: a paired bootstrap of the per-query reciprocal-rank difference (its mean is the MRR@10 gain); the detail
carries Recall@1 of both and McNemar's exact p on the queries exactly one of them ranks a hit first. The rule is
:func:`shipyard.loop.compare.decide` (metric ``mrr@10``, higher is better). :func:`compare_for_promotion` picks
this comparison or the tabular/text one by the champion's task.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.loop import PromotionConfig
from shipyard.errors import ShipyardError
from shipyard.loop.compare import (
    Decision,
    SliceResult,
    compare_paths,
    decide,
    feedback_cutoff,
    mcnemar,
    paired_bootstrap,
)
from shipyard.loop.monitor import run_folder_of
from shipyard.loop.pairs import feedback_pairs, model_folder, passage_collection

logger = logging.getLogger(__name__)

DEPTH = 10


def task_of(path: str | Path) -> str | None:
    meta = model_folder(Path(path)) / "shipyard.json"
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError):
        return None


def reciprocal_ranks(searcher: Any, queries: list[str], groups: list[str]) -> np.ndarray:
    """1 / rank of the first passage of the query's group within the top ``DEPTH`` (0 when none)."""
    out = np.zeros(len(queries))
    for i, (row, group) in enumerate(zip(searcher.search(queries, DEPTH), groups, strict=True)):
        rank = next((r for r, hit in enumerate(row, start=1) if hit["group"] == group), None)
        out[i] = 0.0 if rank is None else 1.0 / rank
    return out


def ranking_slice(name: str, champion: np.ndarray, challenger: np.ndarray, cfg: PromotionConfig) -> SliceResult:
    """Both models' reciprocal ranks on the same queries -> the MRR@10 gain and its paired-bootstrap p-value."""
    gain, p = paired_bootstrap(1.0 - champion, 1.0 - challenger, rounds=cfg.bootstrap, seed=cfg.seed)
    first_a, first_b = champion >= 1.0, challenger >= 1.0
    only_a, only_b, p_first = mcnemar(first_a, first_b)
    detail = {
        "rounds": cfg.bootstrap,
        "recall@1": {"champion": float(first_a.mean()), "challenger": float(first_b.mean())},
        "recall@1_mcnemar": {"only_champion": only_a, "only_challenger": only_b, "p_value": p_first},
    }
    return SliceResult(
        name, len(champion), "mrr@10", float(champion.mean()), float(challenger.mean()), gain, p, "paired_bootstrap",
        detail,
    )  # fmt: skip


def compare_retrieval_paths(
    store: Any, model: str, champion_path: str | Path, challenger_path: str | Path, cfg: PromotionConfig
) -> Decision:
    """Holdout = the champion run's test queries; feedback = pairs sent after the challenger's training cut-off."""
    import pandas as pd

    from shipyard.models.searcher import Searcher  # heavy (torch): only when two models are compared

    test = run_folder_of(champion_path) / "splits" / "test.parquet"
    if not test.is_file():
        raise ShipyardError("the champion run keeps no test split to compare the two on", where=str(test))
    if task_of(challenger_path) != "retrieval":
        raise ShipyardError("the challenger is not a retrieval model like the champion", where=str(challenger_path))
    champion, challenger = Searcher.load(champion_path), Searcher.load(challenger_path)
    holdout = pd.read_parquet(test)
    queries, groups = holdout["query"].astype(str).tolist(), holdout["group"].astype(str).tolist()
    slices = [
        ranking_slice(
            "holdout", reciprocal_ranks(champion, queries, groups), reciprocal_ranks(challenger, queries, groups), cfg
        )
    ]
    cutoff = feedback_cutoff(challenger_path)
    pairs = feedback_pairs(store, model, since=cutoff + 1e-6 if cutoff is not None else None)
    if len(pairs):
        known = passage_collection(champion_path)
        wanted = []
        for pair in pairs.itertuples():
            passage = known.get(int(pair.passage_id)) if str(pair.passage_id).isdigit() else None
            if passage is None:
                raise ShipyardError(
                    f"feedback pair {pair.prediction_id} names passage {pair.passage_id!r}, which is not in the "
                    "champion's passage collection",
                    where=f"loop feedback, prediction {pair.prediction_id}",
                )
            wanted.append(passage["group"])
        texts = pairs["query"].astype(str).tolist()
        slices.append(
            ranking_slice(
                "feedback", reciprocal_ranks(champion, texts, wanted), reciprocal_ranks(challenger, texts, wanted), cfg
            )
        )
    decision = decide(slices, cfg)
    logger.info("retrieval champion/challenger: %s (%s)", "promote" if decision.promote else "keep",
                "; ".join(decision.reasons))  # fmt: skip
    return decision


def compare_for_promotion(
    store: Any, model: str, champion_path: str | Path, challenger_path: str | Path, cfg: PromotionConfig
) -> Decision:
    """The comparison `shipyard promote` runs: by ranking for retrieval models, else :func:`compare_paths`."""
    if task_of(champion_path) == "retrieval":
        return compare_retrieval_paths(store, model, champion_path, challenger_path, cfg)
    return compare_paths(store, model, champion_path, challenger_path, cfg)
