"""The recommender against the libraries users would pick instead, in one run on MovieLens-100K.

- explicit: 5-fold RMSE / MAE on the official u1..u5 folds: shipyard biased MF (trained by the engine), shipyard
  Bayesian MF (Gibbs sampling), their average, against scikit-surprise SVD and SVD++ (library defaults);
- implicit: leave-last-out (each user's latest rating is the test item, everything before it trains), full-catalogue
  HR@10 / NDCG@10 (every item the user has not rated is a candidate), plus the sampled protocol (100 negatives)
  for reference: shipyard popularity, item-kNN, BPR and two-tower against `implicit` ALS (its factors, regulari-
  sation and alpha tuned on a validation split: each user's second-latest rating) and `implicit` BPR;
- cold start: 10 % of the items held out of training entirely; each user with a held-out rating ranks the held-out
  items from their training history: the two-tower model (item tower on MiniLM text + genres + year) against
  popularity (which knows nothing of unseen items: arbitrary order) and genre popularity;
- serving core: one recommendation = fold-in of the user's vector from recent events + FAISS search + filters, in
  process, at concurrency 1 and 64 (threads), then that BPR model over HTTP (below);
- serve: trained runs (``--runs``) over HTTP, `shipyard serve` with micro-batching off (the baseline) and on, at
  concurrency 1 and 64, with ratios (bench/recommend_http.py). The two-tower towers in torch / ONNX fp32 / ONNX
  int8: bench/recommend_onnx.py.

    SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/recommend.py [--sections explicit,implicit,cold,core]
        [--folds u1,u2,u3,u4,u5] [--threads 2] [--out bench_recommend.json] [--runs RUN,RUN --requests 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipyard.data.interaction_splits import cold_items, leave_last_out
from shipyard.data.interactions import IdIndex, movielens_fold, read_movielens
from shipyard.data.item_features import item_feature_matrix, user_feature_matrix
from shipyard.evaluation.ranking import (
    beyond_accuracy,
    interaction_matrix,
    ranking_metrics,
    rating_metrics,
    sampled_ranking_metrics,
    top_k,
)
from shipyard.models.recommend.baselines import ItemKNN, Popularity
from shipyard.models.recommend.bayes_mf import BayesianMF
from shipyard.models.recommend.factor import BPR, BiasedMF
from shipyard.models.recommend.index import ItemIndex
from shipyard.models.recommend.two_tower import TwoTower, last_histories, sequence_examples
from shipyard.settings import data_dir
from shipyard.training.recommend import NegativeSampler, Split, fit_recommender, training_config

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench modules
from recommend_http import http_bench

log = logging.getLogger("bench.recommend")
MF = {"dim": 64, "reg": 0.1, "lr": 0.005, "epochs": 20, "batch": 1024}
BPMF = {"dim": 10, "alpha": 2.0, "sweeps": 200, "burn_in": 20}
BPR_CFG = {"dim": 64, "reg": 1e-4, "lr": 0.01, "epochs": 20, "batch": 1024}
TT = {"dim": 64, "hidden": 256, "history": 50, "lr": 0.003, "epochs": 8, "batch": 512, "temperature": 0.1}


def _timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# ---------------------------------------------------------------------------------------------- explicit
def _explicit_fold(folder: Path, fold: str) -> dict[str, dict[str, float]]:
    from surprise import SVD, Dataset, Reader, SVDpp, accuracy
    from surprise.model_selection import PredefinedKFold

    users, items = IdIndex(range(1, 944)), IdIndex(range(1, 1683))
    base, test = movielens_fold(folder, fold)
    u, i = users.encode(base.frame.user_id, where=fold), items.encode(base.frame.item_id, where=fold)
    r = base.frame.rating.to_numpy(np.float32)
    ut, it = users.encode(test.frame.user_id, where=fold), items.encode(test.frame.item_id, where=fold)
    y = test.frame.rating.to_numpy()
    torch.manual_seed(0)  # the initial weights: the engine seeds only once fit starts
    mf = BiasedMF(943, 1682, dim=MF["dim"], reg=MF["reg"], global_mean=float(r.mean()))
    cfg = training_config(
        optimizer="adam", learning_rate=MF["lr"], batch_size=MF["batch"], epochs=MF["epochs"],
        schedule={"name": "cosine"}, log_every_steps=1000,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as run_dir:
        _, t_mf = _timed(lambda: fit_recommender(mf, Split({"user": u, "item": i}, r), cfg, Path(run_dir)))
    p_mf = np.clip(mf.predict_ratings(ut, it), 1, 5)
    bpmf, t_bp = _timed(lambda: BayesianMF(943, 1682, **BPMF).fit(u, i, r))
    p_bp = bpmf.predict(ut, it)
    reader = Reader(line_format="user item rating timestamp", sep="\t", rating_scale=(1, 5))
    data = Dataset.load_from_folds([(f"{folder}/{fold}.base", f"{folder}/{fold}.test")], reader)
    trainset, testset = next(PredefinedKFold().split(data))
    found = {}
    for name, algo in (("surprise SVD", SVD(random_state=0)), ("surprise SVD++", SVDpp(random_state=0))):
        _, secs = _timed(lambda algo=algo: algo.fit(trainset))
        preds = algo.test(testset)
        found[name] = {"rmse": accuracy.rmse(preds, verbose=False), "mae": accuracy.mae(preds, verbose=False)}
        found[name]["seconds"] = secs
    found["shipyard biased MF"] = {**rating_metrics(y, p_mf), "seconds": t_mf}
    found["shipyard Bayesian MF"] = {**rating_metrics(y, p_bp), "seconds": t_bp}
    found["shipyard MF + BMF average"] = {**rating_metrics(y, (p_mf + p_bp) / 2), "seconds": t_mf + t_bp}
    return found


def explicit(folder: Path, folds: list[str]) -> dict[str, Any]:
    rows: dict[str, list[dict[str, float]]] = {}
    for fold in folds:
        for name, m in _explicit_fold(folder, fold).items():
            rows.setdefault(name, []).append(m)
            log.info("%s %-28s rmse %.4f mae %.4f (%.1f s)", fold, name, m["rmse"], m["mae"], m["seconds"])
    return {
        name: {
            "rmse": statistics.mean(m["rmse"] for m in ms),
            "mae": statistics.mean(m["mae"] for m in ms),
            "rmse_by_fold": [round(m["rmse"], 4) for m in ms],
            "seconds_per_fold": statistics.mean(m["seconds"] for m in ms),
        }
        for name, ms in rows.items()
    }


# ---------------------------------------------------------------------------------------------- implicit
class Data:
    """MovieLens-100K as positions, with the leave-last-out split and the item / user feature rows."""

    def __init__(self, folder: Path) -> None:
        ml = read_movielens(folder)
        self.ml = ml
        self.users, self.items = IdIndex(sorted(ml.users.index)), IdIndex(sorted(ml.items.index))
        self.n_users, self.n_items = len(self.users), len(self.items)
        frame = ml.frame.assign(
            u=self.users.encode(ml.frame.user_id, where="u.data"), i=self.items.encode(ml.frame.item_id, where="u.data")
        )
        self.frame = frame
        self.user_x = user_feature_matrix(ml.users, self.users.to_list())
        self._item_x: np.ndarray | None = None

    @property
    def item_x(self) -> np.ndarray:
        """The item feature rows (MiniLM text embeddings): computed when a two-tower model first needs them."""
        if self._item_x is None:
            self._item_x, secs = _timed(lambda: item_feature_matrix(self.ml.items, self.items.to_list()))
            log.info("embedded %d item texts with MiniLM in %.1f s", self.n_items, secs)
        return self._item_x


def _train_bpr(u: np.ndarray, i: np.ndarray, n_users: int, n_items: int) -> BPR:
    torch.manual_seed(0)  # the initial weights: the engine seeds only once fit starts
    model = BPR(n_users, n_items, dim=BPR_CFG["dim"], reg=BPR_CFG["reg"])
    cfg = training_config(
        optimizer="adam", learning_rate=BPR_CFG["lr"], batch_size=BPR_CFG["batch"], epochs=BPR_CFG["epochs"],
        log_every_steps=1000,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as run_dir:
        fit_recommender(
            model, Split({"user": u, "item": i}, np.ones(len(u), np.float32)), cfg, Path(run_dir),
            callbacks=(NegativeSampler(u, i, n_items),),
        )  # fmt: skip
    return model


def _train_two_tower(d: Data, train: Any, trainable: np.ndarray | None = None) -> TwoTower:
    u, hist, target = sequence_examples(
        train.u.to_numpy(), train.i.to_numpy(), train.timestamp.to_numpy(), TT["history"]
    )
    torch.manual_seed(0)  # the initial weights: the engine seeds only once fit starts
    model = TwoTower(
        d.item_x, d.user_x, trainable=trainable, dim=TT["dim"], hidden=TT["hidden"], history=TT["history"],
        temperature=TT["temperature"],
    )  # fmt: skip
    cfg = training_config(
        optimizer="adamw", learning_rate=TT["lr"], batch_size=TT["batch"], epochs=TT["epochs"], weight_decay=1e-4,
        schedule={"name": "cosine", "warmup_ratio": 0.05}, log_every_steps=1000,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as run_dir:
        fit_recommender(model, Split({"hist": hist, "uidx": u}, target), cfg, Path(run_dir), task="classification")
    return model


def _als(seen: Any, factors: int, reg: float, alpha: float) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares

    als = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha, iterations=15, random_state=0)
    als.fit(seen, show_progress=False)
    return np.asarray(als.user_factors) @ np.asarray(als.item_factors).T


def _evaluate(scores: np.ndarray, seen: Any, test: Any, n_users: int, *, full: bool = True) -> dict[str, Any]:
    relevant: list[list[int]] = [[] for _ in range(n_users)]
    for uu, ii in zip(test.u, test.i, strict=True):
        relevant[uu].append(int(ii))
    users = np.array([uu for uu in range(n_users) if relevant[uu]])
    lists = top_k(scores[users], 10, seen[users])
    out = ranking_metrics(lists, [relevant[uu] for uu in users], 10)
    if not full:  # tuning: the ranking metrics alone
        return out
    out["beyond"] = beyond_accuracy(lists, seen, users)
    sampled = sampled_ranking_metrics(
        lambda us, cand: np.take_along_axis(scores[us], cand, axis=1), test.u.to_numpy(), test.i.to_numpy(),
        seen, scores.shape[1],
    )  # fmt: skip
    return {**out, **sampled}


def implicit_bench(d: Data) -> dict[str, Any]:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    split = leave_last_out(d.frame, validation=False, min_events=2)
    train, test = split["train"], split["test"]
    seen = interaction_matrix(train.u.to_numpy(), train.i.to_numpy(), (d.n_users, d.n_items))
    out: dict[str, Any] = {"protocol": "leave-last-out, full catalogue (sampled: 100 negatives)"}
    # tune ALS on a validation split inside train (each user's second-latest rating)
    inner = leave_last_out(train, validation=False, min_events=2)
    inner_seen = interaction_matrix(inner["train"].u.to_numpy(), inner["train"].i.to_numpy(), seen.shape)
    grid = [(f, r, a) for f in (64, 128) for r in (0.01, 0.1) for a in (1.0, 10.0, 40.0)]
    tuned = max(grid, key=lambda g: _evaluate(_als(inner_seen, *g), inner_seen, inner["test"], d.n_users)["ndcg@10"])
    out["als_tuned"] = {"factors": tuned[0], "regularization": tuned[1], "alpha": tuned[2]}
    candidates = {
        "popularity": lambda: Popularity(d.n_items).fit(seen).scores(d.n_users).copy(),
        "item-kNN": lambda: ItemKNN(neighbours=100).fit(seen).scores(seen),
        "implicit ALS (tuned)": lambda: _als(seen, *tuned),
        "implicit BPR": lambda: _implicit_bpr(BayesianPersonalizedRanking, seen),
        "shipyard BPR": lambda: _bpr_scores(train, d, out),
        "shipyard two-tower": lambda: _two_tower_scores(train, d),
    }
    for name, make in candidates.items():
        scores, secs = _timed(make)
        out[name] = {**_evaluate(scores, seen, test, d.n_users), "train_seconds": secs}
        log.info("%-22s HR@10 %.4f NDCG@10 %.4f (%.1f s)", name, out[name]["hr@10"], out[name]["ndcg@10"], secs)
    return out


def _implicit_bpr(cls: Any, seen: Any) -> np.ndarray:
    model = cls(factors=64, iterations=100, random_state=0)
    model.fit(seen, show_progress=False)
    return np.asarray(model.user_factors) @ np.asarray(model.item_factors).T


def _bpr_scores(train: Any, d: Data, keep: dict[str, Any]) -> np.ndarray:
    model = _train_bpr(train.u.to_numpy(), train.i.to_numpy(), d.n_users, d.n_items)
    keep["_bpr_model"] = model  # the serving-core section reuses it
    return model.user_vectors(np.arange(d.n_users)) @ model.item_vectors().T


def _two_tower_scores(train: Any, d: Data) -> np.ndarray:
    model = _train_two_tower(d, train)
    hist = last_histories(train.u.to_numpy(), train.i.to_numpy(), train.timestamp.to_numpy(), d.n_users, TT["history"])
    return model.user_vectors_from(hist, np.arange(d.n_users)) @ model.item_vectors().T


# ---------------------------------------------------------------------------------------------- cold start
def cold_bench(d: Data) -> dict[str, Any]:
    train, held = cold_items(d.frame, share=0.1, seed=0)
    cold = np.zeros(d.n_items, bool)
    cold[np.unique(held.i.to_numpy())] = True
    model = _train_two_tower(d, train, trainable=~cold)
    hist = last_histories(train.u.to_numpy(), train.i.to_numpy(), train.timestamp.to_numpy(), d.n_users, TT["history"])
    cold_ids = np.flatnonzero(cold)
    users = np.unique(held.u.to_numpy())
    relevant = [set(held.i[held.u == uu].tolist()) for uu in users]
    rel_pos = [[int(np.searchsorted(cold_ids, i)) for i in r] for r in relevant]
    scores_tt = model.user_vectors_from(hist[users], users) @ model.item_vectors()[cold_ids].T
    # genre popularity: an unseen item scores the mean training popularity of its genres
    counts = np.bincount(train.i.to_numpy(), minlength=d.n_items).astype(float)
    genres = d.ml.items.reindex(d.items.to_list())["genres"].tolist()
    by_genre: dict[str, list[float]] = {}
    for it in np.flatnonzero(~cold):
        for g in genres[it]:
            by_genre.setdefault(g, []).append(counts[it])
    gpop = np.array([np.mean([np.mean(by_genre.get(g, [0.0])) for g in genres[it]] or [0.0]) for it in cold_ids])
    rng = np.random.default_rng(0)
    found = {
        "shipyard two-tower": scores_tt,
        "popularity (no counts for unseen items: arbitrary order)": rng.random((len(users), len(cold_ids))),
        "genre popularity": np.broadcast_to(gpop, (len(users), len(cold_ids))),
    }
    out: dict[str, Any] = {"cold_items": int(cold.sum()), "users": len(users), "events": len(held)}
    for name, s in found.items():
        out[name] = ranking_metrics(top_k(s, 10), rel_pos, 10)
        log.info("cold %-50s HR@10 %.4f", name, out[name]["hr@10"])
    return out


# ---------------------------------------------------------------------------------------------- serving core
def core_bench(d: Data, model: BPR | None = None, requests: int = 2000) -> dict[str, Any]:
    if model is None:  # latency does not depend on how well the model ranks: a short fit will do
        split = leave_last_out(d.frame, validation=False, min_events=2)
        BPR_CFG["epochs"] = 2
        model = _train_bpr(split["train"].u.to_numpy(), split["train"].i.to_numpy(), d.n_users, d.n_items)
    gram = model.item_vectors()[:, :-1].astype(np.float64)
    gram = gram.T @ gram  # as the served model keeps it
    index = ItemIndex(model.item_vectors())
    rng = np.random.default_rng(0)
    recent = [rng.integers(0, d.n_items, size=20) for _ in range(requests)]

    def one(items: np.ndarray) -> float:
        t = time.perf_counter()
        vec = model.fold_in(items, gram=gram)
        index.recommend(vec, 10, exclude=set(items.tolist()))
        return (time.perf_counter() - t) * 1000

    out = {}
    for conc in (1, 64):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(conc) as pool:
            lat = sorted(pool.map(one, recent))
        wall = time.perf_counter() - t0
        out[f"concurrency {conc}"] = {
            "p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(len(lat) * 0.99)], "per_s": requests / wall,
        }  # fmt: skip
        log.info("core concurrency %d: %s", conc, out[f"concurrency {conc}"])
    out["http"] = http_core(d, model, requests=min(requests, 1000))
    return out


def http_core(d: Data, model: BPR, requests: int) -> dict[str, Any]:
    """The core section's BPR model served over HTTP (bench/recommend_http.py: batching off and on)."""
    from shipyard.artifact_recommend import save_recommender

    folder = Path(tempfile.mkdtemp()) / "model"
    events = d.frame[["user_id", "item_id", "rating", "timestamp"]]
    save_recommender(folder, model=model, kind="bpr", params={"dim": BPR_CFG["dim"]},
                     user_ids=d.users.to_list(), item_ids=d.items.to_list(), interactions=events)  # fmt: skip
    return http_bench(folder, d.users.to_list(), d.items.to_list(), requests=requests)


def serve_runs(runs: list[str], requests: int) -> dict[str, Any]:
    """Trained runs (``shipyard train``; a two-tower one with ``shipyard optimize`` towers or not) over HTTP."""
    out = {}
    for run in runs:
        model = Path(run) / "model" if (Path(run) / "model").is_dir() else Path(run)  # a model folder: no towers
        ids = json.loads((model / "ids.json").read_text())
        out[Path(run).name] = http_bench(Path(run), ids["users"], ids["items"], requests=requests)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="explicit,implicit,cold,core")
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_recommend.json")
    parser.add_argument("--runs", default="", help="serve section: trained run folders, comma-separated")
    parser.add_argument("--requests", type=int, default=1000, help="serve section: requests per level and mode")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    folder = data_dir() / "movielens-100k"
    sections = args.sections.split(",")
    results: dict[str, Any] = {}
    if "explicit" in sections:
        results["explicit"] = explicit(folder, args.folds.split(","))
    if {"implicit", "cold", "core"} & set(sections):
        d = Data(folder)
        if "implicit" in sections:
            results["implicit"] = implicit_bench(d)
            Path(args.out).with_suffix(".partial.json").write_text(
                json.dumps({k: v for k, v in results["implicit"].items() if not k.startswith("_")}, default=float)
            )
        if "cold" in sections:
            results["cold"] = cold_bench(d)
        if "core" in sections:
            results["core"] = core_bench(d, results.get("implicit", {}).pop("_bpr_model", None))
    if "serve" in sections:
        results["serve"] = serve_runs([r for r in args.runs.split(",") if r], args.requests)
    results.get("implicit", {}).pop("_bpr_model", None)
    Path(args.out).write_text(json.dumps(results, indent=2, default=float))
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
