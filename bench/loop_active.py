"""Active vs random picking, several seeds, where the model is short of labels; and a real MiniLM retrain (#14).

``bench/loop.py`` showed both strategies closing the gap within 100 labels (an easy shift, one seed). Here:

- ``--half tabular``: the real path (prediction log -> labelling queue -> feedback -> ``shipyard.loop.retrain``,
  a new shipyard run each time). The original MLP learns from only ``--base-rows`` (500) Adult rows of people
  under 40; the new population is people aged 40 and over (a harder slice than "everyone": higher incomes, other
  occupations). Pool: ``--pool`` (2,000) ``adult.data`` rows aged 40+; new test: 4,000 ``adult.test`` rows aged 40+;
  old test: 3,000 ``adult.test`` rows under 40 (both fixed across seeds). Per seed: a new base sample, base
  training seed, pool draw and random picks; the ceiling (every pool label) is trained for the first
  ``--ceiling-seeds`` (1) only.
- ``--half text``: frozen MiniLM + logistic regression on cached embeddings (what ``mode: frozen`` learns; cheap
  enough for many seeds), the picks made by the queue's own ``select``. Original: ``--text-base-rows`` (200) SST-2
  sentences; pool: Financial PhraseBank positive/negative sentences (400 held out as the new test set); old test:
  SST-2 ``test.tsv``. N goes down to 25, where the labels are scarce.
- ``--half text-retrain``: the real thing for text, at N = 1,000 only: MiniLM fine-tuned (``mode: full``, 1 epoch)
  on 1,000 SST-2 sentences, its answers on the PhraseBank pool logged, 1,000 picked (queue or random), labelled,
  and ``shipyard.loop.retrain`` (what ``shipyard retrain RUN --with-feedback`` runs) fine-tunes a challenger
  (``--text-retrain-arms ceiling``: with every pool label instead).

Arms: ``active`` = the labelling queue (margin uncertainty, then k-center diversity over the 5n least sure);
``uncertainty`` = the n smallest margins alone (``select(..., pool_factor=1)``); ``random``. Text only: any
queue strategy by name (``typical``, ``badge``, ``balanced``, ``cold_start``: one shot, from the original
model), or ``STRATEGY-rounds``: picked in rounds of ``--round-size`` (50) with a refit on everything labelled so
far before each round, as a queue used with ``shipyard retrain`` between rounds would (``cold_start-rounds``
takes its first 100 typical at once). Tabular: ``STRATEGY-rounds`` too, through the real loop (log the served
model's answers, ``build_queue``, feedback, ``retrain``, serve the challenger; ``--round-size`` 100 and
``--rounds-max`` 500 keep it to 5 retrains); ``--seed-list`` splits seeds over processes and ``--merge`` joins
their JSON outputs or logs. Reported per N and
arm: the mean accuracy on the new population over seeds with a 95 % t-interval, and the paired difference
active - random (same seed, same pool) with its 95 % t-interval, and each arm at n against random at 2n.

    PYTHONPATH=src SHIPYARD_DATA_DIR=../shared/data nice -n 10 .venv/bin/python bench/loop_active.py \
        --half tabular|text|text-retrain [--seeds 3] [--out bench-loop-active.json]
        [--arms random,badge-rounds --text-ns 300,500,1000 --round-size 50 --emb-cache /tmp/minilm.npz]
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from loop import ADULT_FEATURES, accuracy, adult_job, phrasebank, read_adult, text_job, train
from shipyard.artifact import Artifact
from shipyard.config.loop import LogPredictionsConfig
from shipyard.loop.feedback import FeedbackItem, record_feedback
from shipyard.loop.predlog import PredictionLog, load_predictions
from shipyard.loop.queue import COLD_START_LABELS, build_queue, select
from shipyard.loop.retrain import retrain
from shipyard.loop.store import LoopStore
from shipyard.settings import data_dir

log = logging.getLogger("bench.loop_active")
ARMS = ("active", "uncertainty", "random")


def interval(values: list[float]) -> dict[str, float]:
    """Mean and 95 % t-interval half-width over seeds."""
    arr = np.asarray(values, dtype=float)
    half = float(stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else None
    return {"mean": float(arr.mean()), "ci95": half, "n": len(arr)}


def summarize(per_seed: list[dict[str, Any]], ns: list[int], arms: tuple[str, ...] = ARMS) -> dict[str, Any]:
    out: dict[str, Any] = {"base": interval([r["base"]["new"] for r in per_seed])}
    out["ceiling"] = interval([r["ceiling"]["new"] for r in per_seed if "ceiling" in r])
    out["old_base"] = interval([r["base"]["old"] for r in per_seed])
    for n in ns:
        for arm in arms:  # an arm run on only some seeds (merged runs) is summarised over those seeds
            key, seen = f"{arm}-{n}", [r for r in per_seed if f"{arm}-{n}" in r]
            if seen:
                out[key] = interval([r[key]["new"] for r in seen])
                out[f"old-{key}"] = interval([r[key]["old"] for r in seen])
            for other in (n, 2 * n) if arm != "random" else ():
                pairs = [r for r in seen if f"random-{other}" in r]
                if not pairs:
                    continue
                diff = [r[key]["new"] - r[f"random-{other}"]["new"] for r in pairs]
                # at 2n: the target's own question, does the arm at n labels reach random at twice as many?
                name = f"{arm}-minus-random-{n}" if other == n else f"{arm}-{n}-minus-random-{other}"
                out[name] = interval(diff) | {"wins": sum(d > 0 for d in diff)}
    return out


# ----------------------------------------------------------------------------------------------- tabular
def tabular_seed(work: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    train_rows, test_rows = read_adult("adult.data"), read_adult("adult.test")
    base_rows = train_rows[train_rows["age"] < 40].sample(n=args.base_rows, random_state=seed)
    csv = work / f"adult-base-{seed}.csv"
    base_rows.to_csv(csv, index=False)
    job = adult_job(csv, f"adult-starved-{seed}")
    job["training"].update(epochs=15, batch_size=64, seed=seed)
    base_run = train(job, work)
    pool = train_rows[train_rows["age"] >= 40].sample(n=args.pool, random_state=100 + seed)
    new_test = test_rows[test_rows["age"] >= 40].sample(n=4000, random_state=7)
    old_test = test_rows[test_rows["age"] < 40].sample(n=3000, random_state=8)
    result: dict[str, Any] = {"base": {"new": accuracy(base_run, new_test), "old": accuracy(base_run, old_test)}}
    log.info("seed %d base: %s", seed, result["base"])
    records = pool[ADULT_FEATURES].to_dict("records")
    outputs = Artifact.load(base_run).predict_records(records)
    truth = pool["Y"].tolist()
    for arm in [a for a in args.arms if a.endswith("-rounds")]:
        result.update(tabular_rounds(work, seed, arm, base_run, pool, (new_test, old_test), args))
    plans = [(arm, n) for n in args.ns for arm in args.arms if not arm.endswith("-rounds")]
    plans += [("ceiling", len(pool))] if seed < args.ceiling_seeds else []  # the costliest retrain of all
    for arm, n in plans:
        store = LoopStore(f"sqlite:///{work / f'fb-{seed}-{arm}-{n}.db'}")
        plog = PredictionLog(store, model="adult", version=1, model_path=str(base_run / "model"),
                             config=LogPredictionsConfig(batch_size=10_000))  # fmt: skip
        ids = plog.log(records, outputs)
        plog.close()
        position = {pid: i for i, pid in enumerate(ids)}
        if arm == "active":
            chosen = list(build_queue(store, "adult", n)["_id"])
        elif arm == "uncertainty":
            frame = load_predictions(store, "adult").sort_values("_at", kind="stable").reset_index(drop=True)
            picks, _ = select(frame, n, None, strategy="margin", pool_factor=1)
            chosen = list(frame["_id"].iloc[picks])
        elif arm == "random":
            chosen = list(np.random.default_rng(200 + seed).choice(ids, size=n, replace=False))
        else:
            chosen = ids
        for pid in chosen:
            record_feedback(store, FeedbackItem(pid, label=truth[position[pid]]), actor="oracle", source="queue")
        child = retrain(base_run, store=store, with_feedback=True)
        key = f"{arm}-{n}" if arm != "ceiling" else "ceiling"
        result[key] = {"new": accuracy(child["run_dir"], new_test), "old": accuracy(child["run_dir"], old_test)}
        log.info("seed %d %s: %s", seed, key, result[key])
    return result


def tabular_rounds(
    work: Path, seed: int, arm: str, base_run: Path, pool: pd.DataFrame, tests: tuple[pd.DataFrame, ...], args: Any
) -> dict[str, Any]:
    """``STRATEGY-rounds`` on the real path, as a team would run it: the served model's answers on the still
    unlabelled pool are logged, ``build_queue`` picks ``--round-size`` of them (``--since`` this round's log),
    they are labelled, ``retrain`` makes a challenger from the original run + every label so far, and the
    challenger is served for the next round. Scored at each N of ``--ns`` that a round ends on."""
    strategy, new_test, old_test = arm.removesuffix("-rounds"), *tests
    records, truth = pool[ADULT_FEATURES].to_dict("records"), pool["Y"].tolist()
    store = LoopStore(f"sqlite:///{work / f'fb-{seed}-{arm}.db'}")
    served, rest, labelled, result = base_run, list(range(len(records))), 0, {}
    last = args.rounds_max or max(args.ns)
    while labelled < last:
        outputs = Artifact.load(served).predict_records([records[i] for i in rest])
        since = time.time()
        plog = PredictionLog(store, model="adult", version=labelled + 1, model_path=str(served / "model"),
                             config=LogPredictionsConfig(batch_size=10_000))  # fmt: skip
        position = {pid: i for pid, i in zip(plog.log([records[i] for i in rest], outputs), rest, strict=True)}
        plog.close()
        size = COLD_START_LABELS if strategy == "cold_start" and not labelled else args.round_size
        picked = build_queue(store, "adult", min(size, last - labelled), strategy=strategy, since=since,
                             seed=seed + labelled)  # fmt: skip
        for pid in picked["_id"]:
            record_feedback(store, FeedbackItem(pid, label=truth[position[pid]]), actor="oracle", source="queue")
        rest = sorted(set(rest) - {position[pid] for pid in picked["_id"]})
        labelled = len(records) - len(rest)
        served = Path(retrain(base_run, store=store, model="adult")["run_dir"])  # base rows + every label so far
        if labelled in args.ns:
            result[f"{arm}-{labelled}"] = {"new": accuracy(served, new_test), "old": accuracy(served, old_test)}
            log.info("seed %d %s-%d: %s", seed, arm, labelled, result[f"{arm}-{labelled}"])
    return result


# ----------------------------------------------------------------------------------------------- text (frozen + LR)
def cached_embedder(path: Path | None) -> Any:
    """MiniLM sentence embeddings, kept in ``path`` (an .npz) between runs: the strategies change, the text does not."""
    from shipyard.loop.drift import embed_texts

    if path is None:
        return embed_texts
    known: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            known = dict(zip(saved["texts"].tolist(), saved["vectors"], strict=True))

    def embed(texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            known.update(zip(todo, embed_texts(todo), strict=True))
            np.savez(path, texts=np.array(list(known)), vectors=np.stack(list(known.values())))
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)

    return embed


def text_lr(args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    embed_texts = cached_embedder(args.emb_cache)
    sst_all = pd.read_csv(data_dir() / "sst2" / "train.tsv", sep="\t")
    old_test = pd.read_csv(data_dir() / "sst2" / "test.tsv", sep="\t")
    fin = phrasebank().sample(frac=1.0, random_state=6)
    new_test, pool = fin.iloc[:400], fin.iloc[400:]
    emb_pool, emb_new, emb_old = (embed_texts(list(f["sentence"])) for f in (pool, new_test, old_test))
    y_pool, y_new, y_old = (f["label"].astype(int).to_numpy() for f in (pool, new_test, old_test))
    per_seed = []
    for seed in range(args.seeds):
        sst = sst_all.sample(n=args.text_base_rows, random_state=seed)
        emb_sst, y_sst = embed_texts(list(sst["sentence"])), sst["label"].astype(int).to_numpy()

        def fit(extra: np.ndarray, emb_sst=emb_sst, y_sst=y_sst) -> dict[str, float]:
            x = np.vstack([emb_sst, emb_pool[extra]])
            t = np.concatenate([y_sst, y_pool[extra]])
            model = LogisticRegression(max_iter=2000, C=1.0).fit(x, t)
            return {"new": float(model.score(emb_new, y_new)), "old": float(model.score(emb_old, y_old))}

        result: dict[str, Any] = {"base": fit(np.array([], dtype=int)), "ceiling": fit(np.arange(len(pool)))}

        def refit(picked: list[int], emb_sst=emb_sst, y_sst=y_sst) -> pd.DataFrame:
            """What the served model would log after a retrain on ``picked``: its answers on the pool."""
            x = np.vstack([emb_sst, emb_pool[picked]])
            t = np.concatenate([y_sst, y_pool[picked]])
            return logged_frame(LogisticRegression(max_iter=2000, C=1.0).fit(x, t).predict_proba(emb_pool))

        frame = refit([])
        for n in args.text_ns:
            for arm in args.arms:
                picks = text_picks(arm, n, frame, emb_pool, refit, seed, args.round_size)
                result[f"{arm}-{n}"] = fit(np.asarray(picks, dtype=int))
        log.info("text seed %d: %s", seed, {k: round(v["new"], 4) for k, v in result.items()})
        per_seed.append(result)
    return {"pool": len(pool), "summary": summarize(per_seed, args.text_ns, tuple(args.arms)), "each": per_seed}


def logged_frame(proba: np.ndarray) -> pd.DataFrame:
    """The prediction log's columns the queue picks from: margin, top probability, predicted label."""
    top = np.sort(proba, axis=1)
    return pd.DataFrame(
        {"_margin": top[:, -1] - top[:, -2], "_confidence": top[:, -1], "_label": proba.argmax(axis=1).astype(str)}
    )


def text_picks(arm: str, n: int, frame: pd.DataFrame, emb: np.ndarray, refit: Any, seed: int, step: int) -> list[int]:
    """Pool positions an arm labels. ``X-rounds``: the queue's strategy X in rounds (pick, label, retrain, pick
    again: the original model for the first round, then one refit on everything labelled so far before each
    next round of ``step``); ``cold_start`` takes its whole typical first round (100 labels) at once."""
    if arm == "random":
        return list(np.random.default_rng(300 + seed).choice(len(frame), size=n, replace=False))
    if arm == "active":
        return select(frame, n, emb, strategy="margin")[0]
    if arm == "uncertainty":
        return select(frame, n, None, strategy="margin", pool_factor=1)[0]
    if not arm.endswith("-rounds"):
        return select(frame, n, emb, strategy=arm, seed=seed)[0]
    strategy, picked = arm.removesuffix("-rounds"), []
    while len(picked) < n:
        size = min(n - len(picked), COLD_START_LABELS if strategy == "cold_start" and not picked else step)
        rest = np.setdiff1d(np.arange(len(frame)), picked)
        now = (refit(picked) if picked else frame).iloc[rest].reset_index(drop=True)
        chosen, _ = select(now, size, emb[rest], strategy=strategy, seed=seed + len(picked), labelled=len(picked))
        picked.extend(int(rest[i]) for i in chosen)
    return picked


# ----------------------------------------------------------------------------------------------- text, real retrain
def text_retrain(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One seed: MiniLM fine-tuned, then retrained by shipyard.loop.retrain with 1,000 labelled PhraseBank rows.
    ``--text-retrain-seed`` draws the SST-2 sample, the training seed and the random picks (0: the first run)."""
    seed = args.text_retrain_seed
    sst = pd.read_csv(data_dir() / "sst2" / "train.tsv", sep="\t").sample(n=1000, random_state=seed)
    sst.to_csv(work / "sst_train.tsv", sep="\t", index=False)
    job = text_job(work / "sst_train.tsv", "sst2-finetuned")
    job["model"]["mode"] = "full"
    job["training"].update(epochs=1, learning_rate=5e-5, batch_size=32, seed=seed)
    started = time.perf_counter()
    base_run = train(job, work)
    fin = phrasebank().sample(frac=1.0, random_state=6)
    new_test, pool = fin.iloc[:400], fin.iloc[400:]
    old_test = pd.read_csv(data_dir() / "sst2" / "test.tsv", sep="\t")
    acc = lambda run, frame: accuracy(run, frame, target="label")  # noqa: E731
    result: dict[str, Any] = {"base": {"new": acc(base_run, new_test), "old": acc(base_run, old_test)},
                              "base_seconds": time.perf_counter() - started}  # fmt: skip
    log.info("text base (fine-tuned): %s", result["base"])
    records = [{"sentence": s} for s in pool["sentence"]]
    outputs = Artifact.load(base_run).predict_records(records)
    truth = pool["label"].astype(str).tolist()
    for arm in args.text_retrain_arms:
        n = len(pool) if arm == "ceiling" else min(1000, len(pool))
        store = LoopStore(f"sqlite:///{work / f'text-{arm}.db'}")
        plog = PredictionLog(store, model="sst2", version=1, model_path=str(base_run / "model"),
                             config=LogPredictionsConfig(batch_size=10_000))  # fmt: skip
        ids = plog.log(records, outputs)
        plog.close()
        position = {pid: i for i, pid in enumerate(ids)}
        if arm == "active":
            chosen = list(build_queue(store, "sst2", n)["_id"])
        elif arm == "random":
            chosen = list(np.random.default_rng(5 + seed).choice(ids, size=n, replace=False))
        else:  # ceiling: every label of the pool
            chosen = ids
        for pid in chosen:
            record_feedback(store, FeedbackItem(pid, label=truth[position[pid]]), actor="oracle", source="queue")
        started = time.perf_counter()
        child = retrain(base_run, store=store, with_feedback=True)
        result[f"{arm}-{n}"] = {"new": acc(child["run_dir"], new_test), "old": acc(child["run_dir"], old_test),
                                "seconds": time.perf_counter() - started}  # fmt: skip
        log.info("text %s-%d (fine-tuned retrain): %s", arm, n, result[f"{arm}-{n}"])
    result["pool"] = len(pool)
    return result


def merged(path: Path) -> list[dict[str, Any]]:
    """A tabular run's per-seed results: its ``--out`` JSON, or its log (a run stopped after some seeds)."""
    if path.suffix == ".json":
        return json.loads(path.read_text())["each"]
    seeds: dict[int, dict[str, Any]] = {}
    for found in re.finditer(r"bench\.loop_active seed (\d+) (\S+): (\{.*\})", path.read_text()):
        seeds.setdefault(int(found[1]), {})[found[2]] = ast.literal_eval(found[3])
    return [seeds[s] for s in sorted(seeds) if "random-1000" in seeds[s]]  # only seeds that finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=["tabular", "text", "text-retrain"], required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--ns", default="100,300,500,1000", help="tabular label budgets")
    parser.add_argument("--text-ns", default="25,50,100,300,1000", help="text label budgets")
    parser.add_argument("--base-rows", type=int, default=500)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--ceiling-seeds", type=int, default=1, help="tabular: seeds that also train the ceiling")
    parser.add_argument("--text-base-rows", type=int, default=200)
    parser.add_argument("--text-retrain-arms", default="active,random", help="of active, random, ceiling")
    parser.add_argument("--text-retrain-seed", type=int, default=0, help="text-retrain: which seed")
    parser.add_argument("--round-size", type=int, default=50, help="text, X-rounds arms: labels per round")
    parser.add_argument("--emb-cache", type=Path, default=None, help="text: keep MiniLM embeddings in this .npz")
    parser.add_argument("--seed-list", default=None, help="tabular: these seeds (e.g. 3,4) instead of --seeds")
    parser.add_argument("--rounds-max", type=int, default=None, help="tabular X-rounds: stop at this many labels")
    parser.add_argument("--merge", type=Path, nargs="*", default=None, help="tabular: summarise these outputs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.arms = [a for a in args.arms.split(",") if a]
    args.ns = [int(n) for n in args.ns.split(",")]
    args.text_ns = [int(n) for n in args.text_ns.split(",")]
    args.text_retrain_arms = [a for a in args.text_retrain_arms.split(",") if a]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    for noisy in ("shipyard.training", "shipyard.pipeline", "shipyard.data", "shipyard.evaluation"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-loop-active-") as tmp:
        work = Path(tmp)
        if args.half == "tabular":
            if args.merge:  # seeds run as separate processes (a loaded machine gives each its own share)
                per_seed = [each for path in args.merge for each in merged(path)]
            else:
                seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
                per_seed = [tabular_seed(work, seed, args) for seed in seeds]
            summary = summarize(per_seed, args.ns, tuple(args.arms))
            results: dict[str, Any] = {"summary": summary, "each": per_seed}
        elif args.half == "text":
            results = text_lr(args)
        else:
            results = text_retrain(work, args)
    results["seconds"] = time.perf_counter() - started
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
