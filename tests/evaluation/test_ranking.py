"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.evaluation.ranking import (
    activity_buckets,
    beyond_accuracy,
    gini,
    interaction_matrix,
    ranking_metrics,
    rating_metrics,
    sampled_ranking_metrics,
    top_k,
)


def test_rating_metrics() -> None:
    m = rating_metrics(np.array([1.0, 3.0]), np.array([2.0, 3.0]))
    assert m["rmse"] == pytest.approx(np.sqrt(0.5)) and m["mae"] == pytest.approx(0.5)


def test_top_k_excludes_seen() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    seen = interaction_matrix(np.array([0]), np.array([0]), (2, 4))
    assert top_k(scores, 2, seen).tolist() == [[1, 3], [3, 2]]


def test_ranking_metrics_by_hand() -> None:
    topk = np.array([[5, 1, 7], [2, 3, 4]])
    m = ranking_metrics(topk, [[1], [9, 4]], k=3)
    assert m["hr@3"] == pytest.approx(1.0)
    # user 0: hit at rank 2 -> 1/log2(3); user 1: hit at rank 3, ideal over 2 relevant items
    ndcg1 = (1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert m["ndcg@3"] == pytest.approx((1 / np.log2(3) + ndcg1) / 2)
    assert m["map@3"] == pytest.approx((0.5 + (1 / 3) / 2) / 2)
    assert m["recall@3"] == pytest.approx((1.0 + 0.5) / 2)
    assert ranking_metrics(topk, [[], []], k=3)["users"] == 0


def test_sampled_metrics_rank_the_target_among_negatives() -> None:
    seen = interaction_matrix(np.array([0]), np.array([0]), (1, 50))

    def perfect(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return (items == 3).astype(float)

    m = sampled_ranking_metrics(perfect, np.array([0]), np.array([3]), seen, 50, k=1, n_negatives=20)
    assert m["sampled_hr@1"] == 1.0 and m["sampled_ndcg@1"] == 1.0
    worst = sampled_ranking_metrics(lambda u, i: -perfect(u, i), np.array([0]), np.array([3]), seen, 50, k=10)
    assert worst["sampled_hr@10"] == 0.0


def test_gini_and_beyond_accuracy() -> None:
    assert gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    # 20 items, item 0 most popular; three users with 1, 2, 6 events
    users = np.array([0, 1, 1, 2, 2, 2, 2, 2, 2])
    items = np.array([0, 0, 1, 0, 1, 2, 3, 4, 5])
    train = interaction_matrix(users, items, (3, 20))
    assert activity_buckets(np.array([1, 2, 6])).tolist() == [0, 1, 2]
    out = beyond_accuracy(np.array([[0, 1], [0, 2], [10, 11]]), train)
    assert out["coverage"] == pytest.approx(5 / 20)
    assert out["top10pct_share"] == pytest.approx(3 / 6)  # items 0 and 1 are the top 10 %
    assert out["by_activity"]["high"]["top10pct_share"] == 0.0
    assert out["novelty"] > 0 and 0 < out["exposure_gini"] < 1
