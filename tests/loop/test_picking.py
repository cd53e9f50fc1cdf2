"""The queue's shift-aware pickers (loop/picking.py through queue.select): they pick sensible items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import ShipyardError
from shipyard.loop.picking import balanced_shares, gradient_embedding, kmeans_pp, typicality
from shipyard.loop.queue import COLD_START_LABELS, select

SIZES = [60, 40, 25, 15]


@pytest.fixture
def clusters() -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated clusters of different sizes in 8 dimensions, and each row's cluster."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(SIZES), 8)) * 20
    x = np.vstack([c + rng.normal(size=(n, 8)) for c, n in zip(centres, SIZES, strict=True)])
    return x, np.repeat(np.arange(len(SIZES)), SIZES)


def logged(confidence: np.ndarray, label: np.ndarray) -> pd.DataFrame:
    """The columns the queue reads from the prediction log."""
    return pd.DataFrame({"_margin": 2 * confidence - 1, "_confidence": confidence, "_label": label.astype(str)})


def test_typical_covers_every_cluster_first_and_biggest_first(clusters) -> None:
    x, cluster = clusters
    frame = logged(np.full(len(x), 0.99), np.zeros(len(x)))  # a confident model: uncertainty says nothing
    picks, _ = select(frame, len(SIZES), x, strategy="typical")
    assert list(cluster[picks]) == [0, 1, 2, 3]  # one per cluster, the biggest cluster first
    for pick in picks:  # and the pick is near its cluster's centre, not an outlier
        members = x[cluster == cluster[pick]]
        distances = np.linalg.norm(members - members.mean(axis=0), axis=1)
        assert np.linalg.norm(x[pick] - members.mean(axis=0)) <= np.quantile(distances, 0.5)


def test_typicality_prefers_dense_rows() -> None:
    x = np.vstack([np.zeros((10, 2)) + np.linspace(0, 0.1, 10)[:, None], [[5.0, 5.0]]])
    scores = typicality(x, neighbours=3)
    assert scores.argmin() == 10  # the lone outlier is the least typical


def test_cold_start_is_typical_until_enough_labels_then_margin(clusters) -> None:
    x, cluster = clusters
    confidence = np.full(len(x), 0.99)
    confidence[cluster == 0] = np.linspace(0.5, 0.6, SIZES[0])  # the model is unsure only inside cluster 0
    frame = logged(confidence, np.zeros(len(x)))
    cold, _ = select(frame, 4, x, strategy="cold_start", labelled=0)
    assert sorted(cluster[cold]) == [0, 1, 2, 3]
    warm, _ = select(frame, 4, x, strategy="cold_start", labelled=COLD_START_LABELS)
    assert set(cluster[warm]) == {0}  # the (retrained) model's uncertainty now leads


def test_balanced_splits_the_budget_over_predicted_classes(clusters) -> None:
    x, cluster = clusters
    predicted = np.where(cluster == 3, "neg", "pos")  # "neg" is predicted rarely and confidently
    confidence = np.where(predicted == "neg", 0.95, 0.55)
    picks, _ = select(logged(confidence, predicted), 10, x, strategy="balanced")
    labels = predicted[picks]
    assert (labels == "neg").sum() == 5 and (labels == "pos").sum() == 5
    assert list(labels[:2]) in (["neg", "pos"], ["pos", "neg"])  # interleaved in queue order
    margin, _ = select(logged(confidence, predicted), 10, x, strategy="margin")
    assert (predicted[margin] == "neg").sum() == 0  # plain margin never asks about the confident class


def test_balanced_shares_give_a_short_class_rest_to_others() -> None:
    assert balanced_shares([3, 100], 10) == [3, 7]
    assert balanced_shares([50, 50, 50], 10) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(balanced_shares([2, 2], 10)) == 4


def test_badge_picks_uncertain_items_spread_over_clusters(clusters) -> None:
    x, cluster = clusters
    confidence = np.where(cluster == 2, 0.99, 0.55)  # sure of cluster 2 only
    picks, _ = select(logged(confidence, np.zeros(len(x))), 3, x, strategy="badge", seed=1)
    assert len(set(picks)) == 3
    assert 2 not in set(cluster[picks])  # nothing is learnt from what the model is sure of
    assert len(set(cluster[picks])) == 3  # and the three picks are in three different clusters


def test_gradient_embedding_scales_by_uncertainty_in_the_predicted_block() -> None:
    x = np.array([[1.0, 2.0], [1.0, 2.0]])
    g = gradient_embedding(x, np.array([0.9, 0.6]), np.array(["a", "b"]))
    assert g.shape == (2, 4)
    np.testing.assert_allclose(g[0], [0.1, 0.2, 0.0, 0.0])
    np.testing.assert_allclose(g[1], [0.0, 0.0, 0.4, 0.8])


def test_kmeans_pp_distinct_and_deterministic() -> None:
    x = np.random.default_rng(3).normal(size=(50, 4))
    assert kmeans_pp(x, 10, seed=2) == kmeans_pp(x, 10, seed=2)
    assert len(set(kmeans_pp(x, 10, seed=2))) == 10
    assert sorted(kmeans_pp(np.zeros((5, 2)), 3)) == [0, 1, 2]  # duplicates only: taken in order


def test_pickers_need_vectors_and_unknown_strategy_is_named(clusters) -> None:
    x, _ = clusters
    frame = logged(np.full(len(x), 0.7), np.zeros(len(x)))
    with pytest.raises(ShipyardError, match="needs the inputs' vectors"):
        select(frame, 3, None, strategy="typical")
    with pytest.raises(ShipyardError, match="unknown strategy 'nope'"):
        select(frame, 3, x, strategy="nope")
    assert select(frame.iloc[:2], 5, None, strategy="typical")[0] == [0, 1]  # fewer rows than asked: all of them
