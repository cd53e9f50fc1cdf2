"""Recommender models: trained through the engine on small real data, fold-in, two-tower cold start, the index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard.data.interactions import IdIndex, read_movielens
from shipyard.errors import ShipyardError
from shipyard.evaluation.ranking import interaction_matrix, rating_metrics, top_k
from shipyard.models.recommend.baselines import ItemKNN, Popularity
from shipyard.models.recommend.factor import BPR, BiasedMF
from shipyard.models.recommend.index import ItemIndex, mmr_rerank
from shipyard.models.recommend.two_tower import PAD, TwoTower, last_histories, sequence_examples
from shipyard.training.recommend import NegativeSampler, Split, fit_recommender, training_config


@pytest.fixture(scope="module")
def small(data_dir: Path) -> dict:
    """MovieLens-100K's first 100 users: ~10k ratings, the last rating of each user held out."""
    ml = read_movielens(data_dir / "movielens-100k")
    f = ml.frame[ml.frame.user_id <= 150]
    users, items = IdIndex(sorted(f.user_id.unique())), IdIndex(sorted(ml.items.index))
    u = users.encode(f.user_id, where="u")
    i = items.encode(f.item_id, where="i")
    last = f.groupby("user_id").cumcount(ascending=False).to_numpy() == 0
    return {"u": u, "i": i, "r": f.rating.to_numpy(np.float32), "t": f.timestamp.to_numpy(), "test": last,
            "n_users": len(users), "n_items": len(items)}  # fmt: skip


def test_biased_mf_trains_through_the_engine_and_folds_in(small: dict, tmp_path: Path) -> None:
    tr, te = ~small["test"], small["test"]
    mf = BiasedMF(small["n_users"], small["n_items"], dim=16, reg=0.05, global_mean=float(small["r"][tr].mean()))
    cfg = training_config(optimizer="adam", learning_rate=0.02, batch_size=1024, epochs=6, log_every_steps=100)
    result = fit_recommender(mf, Split({"user": small["u"][tr], "item": small["i"][tr]}, small["r"][tr]), cfg, tmp_path)
    assert result.epochs_run == 6 and (tmp_path / "train_log.jsonl").is_file()
    pred = mf.predict_ratings(small["u"][te], small["i"][te])
    baseline = rating_metrics(small["r"][te], np.full(te.sum(), small["r"][tr].mean()))["rmse"]
    assert rating_metrics(small["r"][te], pred)["rmse"] < baseline
    # fold-in from user 0's ratings alone reproduces the trained user's ordering of the catalogue
    mine = (small["u"] == 0) & tr
    folded = mf.fold_in(small["i"][mine], small["r"][mine])
    items = mf.item_vectors()
    corr = np.corrcoef(items @ folded, items @ mf.user_vectors(np.array([0]))[0])[0, 1]
    assert corr > 0.8


def test_bpr_with_sampled_negatives_beats_random(small: dict, tmp_path: Path) -> None:
    tr = ~small["test"]
    u, i = small["u"][tr], small["i"][tr]
    sampler = NegativeSampler(u, i, small["n_items"])
    bpr = BPR(small["n_users"], small["n_items"], dim=16, reg=1e-4)
    cfg = training_config(optimizer="adam", learning_rate=0.02, batch_size=1024, epochs=4, log_every_steps=100)
    fit_recommender(
        bpr, Split({"user": u, "item": i}, np.ones(len(u), np.float32)), cfg, tmp_path, callbacks=(sampler,)
    )
    seen = interaction_matrix(u, i, (small["n_users"], small["n_items"]))
    scores = bpr.user_vectors(np.arange(small["n_users"])) @ bpr.item_vectors().T
    test_items = np.full(small["n_users"], -1)
    test_items[small["u"][small["test"]]] = small["i"][small["test"]]
    hits = (top_k(scores, 50, seen) == test_items[:, None]).any(axis=1).mean()
    assert hits > 3 * 50 / small["n_items"]  # far above a random list's hit rate
    # the folded-in vector orders items close to the trained one
    mine = u == 0
    corr = np.corrcoef(bpr.item_vectors() @ bpr.fold_in(i[mine]), scores[0])[0, 1]
    assert corr > 0.5


def test_negative_sampler_avoids_positives() -> None:
    import torch

    users, items = np.array([0, 0, 0, 0, 0, 1]), np.array([0, 1, 2, 3, 4, 9])
    sampler = NegativeSampler(users, items, 10)

    class Fit:
        aug_gen = torch.Generator().manual_seed(0)

    out = sampler.on_train_batch(Fit(), {"user": torch.zeros(200, dtype=torch.long)})  # type: ignore[arg-type]
    assert not (out["neg"] < 5).any()  # user 0's positives are 0..4


def test_baselines(small: dict) -> None:
    m = interaction_matrix(small["u"], small["i"], (small["n_users"], small["n_items"]))
    pop = Popularity(small["n_items"]).fit(m)
    assert pop.counts[pop.ranked()[0]] == pop.counts.max()
    knn = ItemKNN(neighbours=20).fit(m)
    s = knn.scores(m[:5])
    assert s.shape == (5, small["n_items"]) and (knn.similarity.getnnz(axis=1) <= 20).all()


def test_sequence_examples_and_histories() -> None:
    users, items, ts = np.array([0, 0, 1, 0]), np.array([5, 6, 7, 8]), np.array([1, 2, 1, 3])
    _, hist, target = sequence_examples(users, items, ts, history=2)
    assert target.tolist() == [5, 6, 8, 7]
    assert hist.tolist() == [[PAD, PAD], [PAD, 5], [5, 6], [PAD, PAD]]
    assert last_histories(users, items, ts, 3, 2).tolist() == [[6, 8], [PAD, 7], [PAD, PAD]]


def test_two_tower_recommends_cold_items_from_metadata(tmp_path: Path) -> None:
    """Items carry a category in their features; users consume one category. Items held out of training (cold)
    are recommended to the users of their category from metadata alone."""
    rng = np.random.default_rng(0)
    n_items, n_cat = 60, 3
    cat = np.arange(n_items) % n_cat
    feats = np.eye(n_cat, dtype=np.float32)[cat] + 0.05 * rng.standard_normal((n_items, n_cat)).astype(np.float32)
    cold = np.arange(n_items) >= 48
    users, items, ts = [], [], []
    for user in range(60):
        pool = np.flatnonzero((cat == user % n_cat) & ~cold)
        for t, item in enumerate(rng.choice(pool, size=8, replace=False)):
            users.append(user), items.append(item), ts.append(t)
    u, hist, target = sequence_examples(np.array(users), np.array(items), np.array(ts), history=5)
    model = TwoTower(feats, trainable=~cold, dim=8, hidden=32, history=5, temperature=0.2)
    cfg = training_config(optimizer="adam", learning_rate=0.02, batch_size=32, epochs=6, log_every_steps=100)
    fit_recommender(model, Split({"hist": hist, "uidx": u}, target), cfg, tmp_path, task="classification")
    assert float(model.item_id.weight.detach()[torch_tensor(cold)].abs().sum()) == 0.0  # cold items never trained
    vecs = model.item_vectors()
    for user_cat in range(n_cat):
        uvec = model.fold_in(np.flatnonzero((cat == user_cat) & ~cold)[:4])
        cold_ids = np.flatnonzero(cold)
        best = cold_ids[np.argsort(-(vecs[cold_ids] @ uvec))[:4]]
        assert (cat[best] == user_cat).all()


def torch_tensor(mask: np.ndarray):  # indexing a parameter with a numpy mask
    import torch

    return torch.as_tensor(mask)


def test_index_filters_mmr_and_save_load(tmp_path: Path) -> None:
    vecs = np.array([[1, 0], [0.99, 0.1], [0.98, 0.12], [0, 1], [0.1, 0.9]], dtype=np.float32)
    index = ItemIndex(vecs)
    items, _ = index.recommend(np.array([1.0, 0.0]), 2)
    assert items.tolist() == [0, 1]
    items, _ = index.recommend(np.array([1.0, 0.0]), 2, exclude={0, 1})
    assert items.tolist() == [2, 4]
    allowed = np.array([False, False, False, True, True])
    assert set(index.recommend(np.array([1.0, 0.0]), 2, allowed=allowed)[0].tolist()) == {3, 4}
    diverse, _ = index.recommend(np.array([1.0, 0.0]), 2, mmr=0.3, pool=5)
    assert diverse.tolist()[0] == 0 and diverse.tolist()[1] in (3, 4)  # not the near-duplicate of item 0
    assert mmr_rerank(np.array([3.0, 2.0, 1.0]), np.eye(3), 3, lam=1.0).tolist() == [0, 1, 2]
    index.save(tmp_path / "items.faiss")
    again = ItemIndex.load(tmp_path / "items.faiss", vecs)
    assert again.recommend(np.array([1.0, 0.0]), 3)[0].tolist() == index.recommend(np.array([1.0, 0.0]), 3)[0].tolist()
    with pytest.raises(ShipyardError, match="different runs"):
        ItemIndex.load(tmp_path / "items.faiss", vecs[:3])
