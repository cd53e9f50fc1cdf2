"""A trained recommender scored on a recommendation run's splits: ranking quality (full-catalogue and sampled),
beyond-accuracy (coverage, novelty, popularity bias by user activity), rating error for MF, and the popularity
baseline on the same split. Used when a run is trained (`shipyard.pipeline_recommend`) and again after an erasure,
on the remaining events (`shipyard.erasure_recommend`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.recommend import RecommendConfig
from shipyard.data.interactions import IdIndex
from shipyard.evaluation import ranking
from shipyard.models.recommend.baselines import Popularity
from shipyard.models.recommend.two_tower import last_histories


def _scores(model: Any, kind: str, users: np.ndarray, train: pd.DataFrame, ui: IdIndex, ii: IdIndex) -> np.ndarray:
    if kind == "two_tower":
        u = ui.encode(train.user_id, where="train")
        i = ii.encode(train.item_id, where="train")
        hist = last_histories(u, i, train.timestamp.to_numpy(), len(ui), model.history)[users]
        return model.user_vectors_from(hist, users) @ model.item_vectors().T
    return model.user_vectors(users) @ model.item_vectors().T


def evaluate(
    cfg: RecommendConfig, model: Any, splits: dict[str, pd.DataFrame], ui: IdIndex, ii: IdIndex, name: str
) -> dict[str, Any]:
    """Ranking (full-catalogue and sampled), beyond-accuracy, and rating error for MF, on one split."""
    target = splits[name]
    target = target[target.user_id.isin(ui.ids)]
    if target.empty:
        return {}
    before = pd.concat([splits["train"]] + ([splits["validation"]] if name == "test" else []))
    seen = ranking.interaction_matrix(
        ui.encode(before.user_id, where="seen"), ii.encode(before.item_id, where="seen"), (len(ui), len(ii))
    )
    tu, ti = ui.encode(target.user_id, where=name), ii.encode(target.item_id, where=name)
    users = np.unique(tu)
    scores = _scores(model, cfg.model.type, users, before, ui, ii)
    k = cfg.evaluation.k
    relevant = [ti[tu == uu].tolist() for uu in users]
    lists = ranking.top_k(scores, k, seen[users])
    out: dict[str, Any] = {**ranking.ranking_metrics(lists, relevant, k), "protocol": "full catalogue"}
    row_of = {int(uu): r for r, uu in enumerate(users)}

    def score_fn(us: np.ndarray, cand: np.ndarray) -> np.ndarray:
        return np.take_along_axis(scores[[row_of[int(x)] for x in us]], cand, axis=1)

    n_neg = cfg.evaluation.sampled_negatives
    out.update(ranking.sampled_ranking_metrics(score_fn, tu, ti, seen, len(ii), k=k, n_negatives=n_neg))
    out["beyond_accuracy"] = ranking.beyond_accuracy(lists, seen, users)
    if cfg.model.type == "mf":
        pred = np.clip(model.predict_ratings(tu, ti), before.rating.min(), before.rating.max())
        out.update(ranking.rating_metrics(target.rating.to_numpy(), pred))
    return out


def popularity_metrics(
    cfg: RecommendConfig, splits: dict[str, pd.DataFrame], ui: IdIndex, ii: IdIndex
) -> dict[str, Any]:
    before = pd.concat([splits["train"], splits["validation"]])
    seen = ranking.interaction_matrix(
        ui.encode(before.user_id, where="seen"), ii.encode(before.item_id, where="seen"), (len(ui), len(ii))
    )
    test = splits["test"]
    tu, ti = ui.encode(test.user_id, where="test"), ii.encode(test.item_id, where="test")
    users = np.unique(tu)
    if not len(users):
        return {}
    scores = Popularity(len(ii)).fit(seen).scores(len(users))
    lists = ranking.top_k(scores, cfg.evaluation.k, seen[users])
    out = ranking.ranking_metrics(lists, [ti[tu == uu].tolist() for uu in users], cfg.evaluation.k)
    out["beyond_accuracy"] = ranking.beyond_accuracy(lists, seen, users)
    return out
