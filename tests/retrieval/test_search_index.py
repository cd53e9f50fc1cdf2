"""The passage index alone (no encoder): flat and HNSW, add / delete in place, filters, BM25, fusion, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard.config.retrieval import IndexConfig
from shipyard.errors import ShipyardError
from shipyard.evaluation.retrieval import ranking_metrics
from shipyard.models.search_index import PassageIndex, rrf


def _unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


TEXTS = ["track your order online", "refund takes five days", "reset your password by email", "cancel an order"]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_search_delete_save_load(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emb = _unit(rng, 4)
    index = PassageIndex(dim=16, config=IndexConfig(kind=kind))
    index.add([10, 11, 12, 13], TEXTS, ["track", "refund", "password", "cancel"], emb)
    top = index.search(["x"], emb[2:3], 1, "dense")[0]
    assert top[0][0] == 12 and top[0][1] == pytest.approx(1.0, abs=1e-4)
    assert index.delete([12, 99]) == 1
    assert 12 not in [pid for pid, _ in index.search(["x"], emb[2:3], 4, "dense")[0]]
    index.save(tmp_path)
    loaded = PassageIndex.load(tmp_path)
    assert sorted(loaded.passages) == [10, 11, 13]
    assert loaded.search(["x"], emb[0:1], 1, "dense")[0][0][0] == 10
    assert loaded.bm25_search(["how do I get a refund"], 1)[0][0][0] == 11


def test_auto_kind_moves_to_hnsw_past_the_threshold() -> None:
    rng = np.random.default_rng(1)
    index = PassageIndex(dim=16, config=IndexConfig(kind="auto", hnsw_above=5))
    index.add(list(range(4)), ["a"] * 4, ["g"] * 4, _unit(rng, 4))
    assert index.kind_of_dense() == "flat"
    emb = _unit(rng, 4)
    index.add(list(range(4, 8)), ["b"] * 4, ["h"] * 4, emb)
    assert index.kind_of_dense() == "hnsw"
    assert index.search(["b"], emb[1:2], 1, "dense")[0][0][0] == 5


def test_filters_duplicates_and_shapes() -> None:
    rng = np.random.default_rng(2)
    emb = _unit(rng, 4)
    index = PassageIndex(dim=16, config=IndexConfig(kind="flat"))
    index.add([1, 2, 3, 4], TEXTS, ["a", "b", "a", "b"], emb, [{"lang": "en"}, {}, {}, {"lang": "en"}])
    found = index.search(["order"], emb[1:2], 4, "hybrid", filters={"group": "a"})[0]
    assert {pid for pid, _ in found} == {1, 3}
    assert [pid for pid, _ in index.search(["order"], emb[0:1], 4, "dense", filters={"lang": "en"})[0]] == [1, 4]
    with pytest.raises(ShipyardError, match="already indexed"):
        index.add([1], ["again"], ["a"], emb[:1])
    with pytest.raises(ShipyardError, match="shape"):
        index.add([9], ["x"], ["a"], emb[:2])


def test_rrf_and_ranking_metrics() -> None:
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert [pid for pid, _ in fused] == [1, 3, 2]
    hits = np.array([[True, False, False], [False, False, True], [False, False, False]])
    m = ranking_metrics(hits, np.array([1, 1, 1]), (1, 3))
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@3"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 0.5) / 3)
