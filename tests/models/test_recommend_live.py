"""The served recommender's state: fallback, events changing the next answer, filters, erasure, the artefact."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from shipyard.artifact_recommend import is_recommender, load_recommender, save_recommender
from shipyard.errors import ShipyardError
from shipyard.models.recommend.factor import BPR, BiasedMF
from shipyard.models.recommend.two_tower import TwoTower

GENRES = [["Action"], ["Comedy"], ["Action", "Comedy"], ["Drama"], ["Drama"], ["Comedy"]] * 5


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(100 + u, 1000 + int(i), float(rng.integers(1, 6)), t) for u in range(8) for t, i in
            enumerate(rng.choice(30, size=6, replace=False))]  # fmt: skip
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _save(tmp_path: Path, model: torch.nn.Module, kind: str, params: dict) -> Path:
    meta = {"title": [f"Movie {i}" for i in range(30)], "genres": GENRES}
    return save_recommender(
        tmp_path / "model", model=model, kind=kind, params=params, user_ids=list(range(100, 108)),
        item_ids=list(range(1000, 1030)), interactions=_events(), item_meta=meta,
    )  # fmt: skip


@pytest.fixture
def live(tmp_path: Path):
    torch.manual_seed(0)
    folder = _save(tmp_path, BPR(8, 30, dim=8), "bpr", {"dim": 8})
    return load_recommender(folder)[0]


def test_artifact_layout_private_history_and_no_pickle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = _save(tmp_path, BPR(8, 30, dim=8), "bpr", {"dim": 8})
    names = {p.name for p in folder.iterdir()}
    assert {"shipyard.json", "model.safetensors", "ids.json", "items.json", "items.faiss"} <= names
    assert os.stat(folder / "interactions.parquet").st_mode & 0o777 == 0o600
    assert is_recommender(folder) and not is_recommender(tmp_path)
    (folder / "items.faiss").write_bytes(b"garbage")
    with pytest.raises(ShipyardError, match="not a FAISS index"):
        load_recommender(folder)


def test_known_user_gets_unseen_items_with_reasons(live) -> None:
    out = live.recommend(user_id=100, k=5)
    assert out["fallback"] is None and len(out["items"]) == 5
    seen = {e["item_id"] for e in live.history(100)}
    assert not seen & {it["item_id"] for it in out["items"]}
    assert all(it["reason"].startswith(("because you liked", "similar to")) for it in out["items"])
    assert out["items"][0]["title"].startswith("Movie")


def test_unknown_user_falls_back_to_popularity_and_says_so(live) -> None:
    out = live.recommend(user_id="nobody", k=3)
    assert out["fallback"] == "popularity" and out["reason_fallback"] == "unknown user"
    counts = _events().item_id.value_counts()
    assert out["items"][0]["item_id"] == counts.index[0]


def test_event_changes_the_next_recommendations_at_once(live) -> None:
    before = [it["item_id"] for it in live.recommend(user_id=101, k=5)["items"]]
    for item in before[:3]:
        live.record_event(101, item, 5.0)
    after = [it["item_id"] for it in live.recommend(user_id=101, k=5)["items"]]
    assert not set(before[:3]) & set(after)  # now seen: excluded
    assert after != before
    # a new user's first event gives personal recommendations at once
    live.record_event("new", 1001)
    first = live.recommend(user_id="new", k=3)
    assert first["fallback"] is None and 1001 not in [it["item_id"] for it in first["items"]]


def test_unknown_item_duplicates_and_heavy_users(live) -> None:
    with pytest.raises(ShipyardError, match="unknown item 99999"):
        live.record_event(100, 99999)
    with pytest.raises(ShipyardError, match=r"recent\[1\].*unknown item 5"):
        live.recommend(recent=[1000, 5])
    assert live.record_event(100, 1000, 3.0, 1)["recorded"]
    assert live.record_event(100, 1000, 3.0, 2)["duplicate"]
    for n in range(3000):  # a user with thousands of events
        live.record_event("heavy", 1000 + n % 30, 1.0, n)
    out = live.recommend(user_id="heavy", k=5, exclude_seen=False)
    assert len(out["items"]) == 5


def test_anonymous_session_category_and_mmr(live) -> None:
    anon = live.recommend(recent=[1000, 1003], k=4)
    assert anon["user_id"] is None and anon["fallback"] is None
    assert {1000, 1003}.isdisjoint(it["item_id"] for it in anon["items"])
    drama = live.recommend(user_id=102, k=3, category="drama")
    assert all("Drama" in it["genres"] for it in drama["items"])
    with pytest.raises(ShipyardError, match="unknown category 'Jazz'"):
        live.recommend(user_id=102, category="Jazz")
    assert len(live.recommend(user_id=102, k=4, mmr=0.5)["items"]) == 4


def test_forget_removes_history_and_vector(live) -> None:
    live.record_event(103, 1007, 5.0)
    assert live.forget([103]) == 1
    assert live.recommend(user_id=103, k=3)["fallback"] == "popularity"
    # afterwards the user's answers depend only on what they do next: the same as a fresh user's
    live.record_event(103, 1010, 5.0)
    live.record_event("fresh", 1010, 5.0)
    ids = lambda u: [it["item_id"] for it in live.recommend(user_id=u, k=5)["items"]]  # noqa: E731
    assert ids(103) == ids("fresh")


def test_mf_and_two_tower_artifacts_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mf = BiasedMF(8, 30, dim=4, global_mean=3.5)
    live = load_recommender(_save(tmp_path / "mf", mf, "mf", {"dim": 4, "reg": 0.05}))[0]
    assert float(live.model.mu) == 3.5 and len(live.recommend(user_id=100, k=3)["items"]) == 3
    live.record_event(100, 1001, 5.0)
    assert live.recommend(user_id=100, k=3)["fallback"] is None
    tt = TwoTower(np.random.default_rng(0).random((30, 6), dtype=np.float32), np.ones((8, 2), np.float32),
                  dim=4, hidden=8, history=5)  # fmt: skip
    params = {"dim": 4, "hidden": 8, "history": 5}
    live = load_recommender(_save(tmp_path / "tt", tt, "two_tower", params))[0]
    np.testing.assert_allclose(live.model.item_vectors(), tt.item_vectors(), atol=1e-6)
    assert len(live.recommend(recent=[1000], k=3)["items"]) == 3
