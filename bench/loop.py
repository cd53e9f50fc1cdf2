"""Continuous learning: does the monitor see drift, and does labelled feedback pay? (issue #14)

Drift detection. A model is trained on a biased slice and then served traffic, request by request, through the
prediction log (one simulated second per request); every ``--check-every`` requests the monitor compares the last
``--window`` requests with the training rows (``shipyard.loop.monitor.check_model``, default thresholds).
- tabular: an MLP on Adult people under 40 (6,000 rows of ``adult.data``); 5,000 in-distribution requests (under-40
  rows of ``adult.test``), then 1,000 from the whole population (``adult.test``, other rows).
- text: all-MiniLM-L6-v2 (``mode: frozen``, linear head) on 1,000 SST-2 training sentences; 5,000 in-distribution
  requests (SST-2 ``dev.tsv``), then 1,000 Financial PhraseBank positive/negative sentences.
Reported: false alarms (checks that alert during the in-distribution phase) and the drifted requests served before
the first alert. Baseline: none needed: the targets are absolute (0 false alarms; alert within 1,000).

Feedback pays. The same biased models meet the new population; N = 100, 300, 1,000 logged inputs are labelled
(active: the labelling queue, ``shipyard.loop.queue``; random: the same N drawn at random), the model is retrained
and scored on the new population and on the old test set; the ceiling uses every label of the new pool.
- tabular: the real path: prediction log -> queue -> feedback -> ``shipyard.loop.retrain`` (a new shipyard run).
- text: fine-tuning MiniLM seven times does not fit this 2-core machine, so the text half uses the frozen encoder
  with a logistic-regression head on cached sentence embeddings (what ``mode: frozen`` trains), with the queue's own
  selection function (``shipyard.loop.queue.select``); it is not a shipyard run.

    PYTHONPATH=src SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/loop.py [--part drift|feedback|all]
        [--skip-text] [--skip-tabular] [--repeats 3]
        [--out bench-loop.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import shipyard
from shipyard.artifact import Artifact
from shipyard.config.loop import DriftThresholds, LogPredictionsConfig
from shipyard.config.schema import Job
from shipyard.loop.feedback import FeedbackItem, record_feedback
from shipyard.loop.monitor import check_model
from shipyard.loop.predlog import PredictionLog
from shipyard.loop.queue import build_queue, select
from shipyard.loop.retrain import retrain
from shipyard.loop.store import LoopStore
from shipyard.settings import data_dir

log = logging.getLogger("bench.loop")
ADULT_FEATURES = [
    "age", "workclass", "education", "education-num", "marital-status", "occupation", "relationship", "race",
    "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
]  # fmt: skip


def read_adult(name: str) -> pd.DataFrame:
    frame = pd.read_csv(data_dir() / "adult" / name, skipinitialspace=True, na_values=["?"])
    frame["Y"] = frame["Y"].astype(str).str.rstrip(".")
    return frame


def train(job: dict[str, Any], work: Path) -> Path:
    job.setdefault("output", {})["runs_root"] = str(work / "runs")
    started = time.perf_counter()
    result = shipyard.run(Job.model_validate(job))
    log.info("trained %s in %.0f s: test %s", job["name"], time.perf_counter() - started, result.test.get("accuracy"))
    return result.run_dir


def adult_job(csv: Path, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": "classification",
        "data": {
            "source": {"path": str(csv), "format": "csv"},
            "target": "Y",
            "drop_columns": ["fnlwgt"],
            "split": {"method": "stratified", "validation": 0.15, "test": 0.15},
        },
        "model": {"type": "mlp", "hidden": [64]},
        "training": {"epochs": 4, "batch_size": 128, "seed": 0, "learning_rate": 0.003},
    }


def text_job(tsv: Path, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": "classification",
        "data": {
            "source": {"path": str(tsv), "format": "tsv"},
            "target": "label",
            "features": [{"name": "sentence", "type": "text"}],
            "split": {"method": "stratified", "validation": 0.1, "test": 0.1},
            "text": {"max_length": 64},
        },
        "model": {"type": "transformer", "pretrained": "minilm", "pooling": "mean", "mode": "frozen"},
        "training": {"epochs": 2, "batch_size": 32, "seed": 0, "learning_rate": 0.003},
    }


# ----------------------------------------------------------------------------------------------- drift detection
def serve_stream(
    store: LoopStore, run_dir: Path, name: str, records: list[dict], phase_at: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Serve ``records`` one per simulated second; check every ``check_every``; when do alerts come?"""
    artifact = Artifact.load(run_dir)
    started = time.perf_counter()
    outputs = artifact.predict_records(records)
    log.info("%s: %d predictions in %.0f s", name, len(records), time.perf_counter() - started)
    clock = [1_000_000.0]
    plog = PredictionLog(
        store, model=name, version=1, model_path=str(run_dir / "model"), config=LogPredictionsConfig(batch_size=100),
        clock=lambda: clock[0],
    )  # fmt: skip
    thresholds = DriftThresholds()
    checks, false_alarms, first_alert = [], 0, None
    for i, (record, output) in enumerate(zip(records, outputs, strict=True), start=1):
        clock[0] += 1.0
        plog.log([record], [output])
        if i % args.check_every:
            continue
        plog.flush()
        report = check_model(store, name, window_s=args.window, thresholds=thresholds, now=clock[0] + 0.5)
        drifted = i > phase_at
        alert = report.status == "drift"
        checks.append({"request": i, "drifted_phase": drifted, "status": report.status, "alerts": report.alerts})
        if alert and not drifted:
            false_alarms += 1
            log.warning("%s: false alarm at request %d: %s", name, i, report.alerts)
        if alert and drifted and first_alert is None:
            first_alert = i - phase_at
            log.info("%s: alert after %d drifted requests: %s", name, first_alert, report.alerts)
        if i % 1000 == 0:
            log.info("%s: %d requests served, %d checks, %d false alarms", name, i, len(checks), false_alarms)
    plog.close()
    return {
        "in_distribution_requests": phase_at,
        "drifted_requests": len(records) - phase_at,
        "checks": len(checks),
        "false_alarms": false_alarms,
        "drifted_requests_to_alert": first_alert,
        "window": args.window,
        "check_every": args.check_every,
    }


def drift_tabular(work: Path, args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    train_rows = read_adult("adult.data")
    young = train_rows[train_rows["age"] < 40].sample(n=6000, random_state=0)
    young.to_csv(work / "adult_young.csv", index=False)
    run_dir = train(adult_job(work / "adult_young.csv", "adult-young"), work)
    test = read_adult("adult.test").sample(frac=1.0, random_state=1)
    calm = test[test["age"] < 40].iloc[:5000]
    shifted = test.drop(calm.index).iloc[:1000]  # the whole population (other rows)
    records = pd.concat([calm, shifted])[ADULT_FEATURES].to_dict("records")
    store = LoopStore(f"sqlite:///{work / 'drift-tabular.db'}")
    return serve_stream(store, run_dir, "adult", records, len(calm), args), run_dir


def phrasebank(polar_only: bool = True) -> pd.DataFrame:
    lines = (data_dir() / "financial_phrasebank" / "Sentences_50Agree.txt").read_text(encoding="latin-1").splitlines()
    rows = [line.rsplit("@", 1) for line in lines if "@" in line]
    frame = pd.DataFrame(rows, columns=["sentence", "sentiment"])
    if polar_only:
        frame = frame[frame["sentiment"].isin(["positive", "negative"])]
    frame["label"] = (frame["sentiment"] == "positive").astype(int).astype(str)
    return frame.reset_index(drop=True)


def drift_text(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    sst = pd.read_csv(data_dir() / "sst2" / "train.tsv", sep="\t").sample(n=1000, random_state=0)
    sst.to_csv(work / "sst_train.tsv", sep="\t", index=False)
    run_dir = train(text_job(work / "sst_train.tsv", "sst2-frozen"), work)
    dev = pd.read_csv(data_dir() / "sst2" / "dev.tsv", sep="\t").sample(n=5000, random_state=1)
    fin = phrasebank().sample(n=1000, random_state=2)
    records = [{"sentence": s} for s in [*dev["sentence"], *fin["sentence"]]]
    store = LoopStore(f"sqlite:///{work / 'drift-text.db'}")
    return serve_stream(store, run_dir, "sst2", records, len(dev), args)


# ----------------------------------------------------------------------------------------------- feedback pays
def accuracy(run_dir: Path | str, frame: pd.DataFrame, target: str = "Y") -> float:
    labels = Artifact.load(run_dir).predict_frame(frame)["label"]
    return float(np.mean(np.asarray(labels, dtype=str) == frame[target].astype(str).to_numpy()))


def feedback_tabular(work: Path, base_run: Path, repeats: int = 1) -> dict[str, Any]:
    """``repeats`` draws of the new population's pool (and of the random picks): the mean and the spread."""
    runs = [feedback_tabular_once(work, base_run, repeat) for repeat in range(repeats)]
    if repeats == 1:
        return runs[0]
    out: dict[str, Any] = {"pool": runs[0]["pool"], "repeats": repeats}
    for key in runs[0]:
        if isinstance(runs[0][key], dict):
            out[key] = {side: float(np.mean([r[key][side] for r in runs])) for side in ("new", "old")} | {
                "new_std": float(np.std([r[key]["new"] for r in runs]))
            }
    out["each"] = runs
    return out


def feedback_tabular_once(work: Path, base_run: Path, repeat: int) -> dict[str, Any]:
    everyone = read_adult("adult.data")
    used = pd.read_csv(work / "adult_young.csv")
    pool = everyone.merge(used.drop_duplicates(), how="left", indicator=True)
    pool = pool[pool["_merge"] == "left_only"].drop(columns="_merge").sample(n=6000, random_state=3 + repeat)
    new_test = read_adult("adult.test").sample(n=5000, random_state=4)
    old_test = pd.read_parquet(base_run / "splits" / "test.parquet")
    result: dict[str, Any] = {
        "pool": len(pool),
        "base": {"new": accuracy(base_run, new_test), "old": accuracy(base_run, old_test)},
    }
    log.info("tabular base: %s", result["base"])
    records = pool[ADULT_FEATURES].to_dict("records")
    outputs = Artifact.load(base_run).predict_records(records)
    truth = pool["Y"].tolist()
    plans = [(s, n) for n in (100, 300, 1000) for s in ("active", "random")] + [("ceiling", len(pool))]
    for strategy, n in plans:
        store = LoopStore(f"sqlite:///{work / f'feedback-{repeat}-{strategy}-{n}.db'}")
        plog = PredictionLog(store, model="adult", version=1, model_path=str(base_run / "model"),
                             config=LogPredictionsConfig(batch_size=1000))  # fmt: skip
        ids = plog.log(records, outputs)
        plog.close()
        position = {pid: i for i, pid in enumerate(ids)}
        if strategy == "active":
            chosen = list(build_queue(store, "adult", n)["_id"])
        elif strategy == "random":
            chosen = list(np.random.default_rng(5 + repeat).choice(ids, size=n, replace=False))
        else:
            chosen = ids
        for pid in chosen:
            record_feedback(store, FeedbackItem(pid, label=truth[position[pid]]), actor="oracle", source="queue")
        started = time.perf_counter()
        child = retrain(base_run, store=store, with_feedback=True)
        key = f"{strategy}-{n}"
        result[key] = {"new": accuracy(child["run_dir"], new_test), "old": accuracy(child["run_dir"], old_test)}
        log.info("tabular %s: %s (retrain %.0f s)", key, result[key], time.perf_counter() - started)
    return result


def feedback_text(work: Path) -> dict[str, Any]:
    """Frozen MiniLM + logistic regression on cached embeddings (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    from shipyard.loop.drift import embed_texts

    sst = pd.read_csv(data_dir() / "sst2" / "train.tsv", sep="\t").sample(n=1000, random_state=0)
    old_test = pd.read_csv(data_dir() / "sst2" / "test.tsv", sep="\t")
    fin = phrasebank().sample(frac=1.0, random_state=6)
    new_test, pool = fin.iloc[:400], fin.iloc[400:]
    started = time.perf_counter()
    emb = {k: embed_texts(list(v["sentence"])) for k, v in
           {"sst": sst, "old": old_test, "new": new_test, "pool": pool}.items()}  # fmt: skip
    log.info("text: %d sentences embedded in %.0f s", sum(len(v) for v in emb.values()), time.perf_counter() - started)
    y = {"sst": sst["label"].astype(int).to_numpy(), "old": old_test["label"].astype(int).to_numpy(),
         "new": new_test["label"].astype(int).to_numpy(), "pool": pool["label"].astype(int).to_numpy()}  # fmt: skip

    def fit(extra: np.ndarray) -> dict[str, float]:
        x = np.vstack([emb["sst"], emb["pool"][extra]])
        t = np.concatenate([y["sst"], y["pool"][extra]])
        model = LogisticRegression(max_iter=2000, C=1.0).fit(x, t)
        return {"new": float(model.score(emb["new"], y["new"])), "old": float(model.score(emb["old"], y["old"]))}

    result: dict[str, Any] = {"pool": len(pool), "base": fit(np.array([], dtype=int))}
    base = LogisticRegression(max_iter=2000).fit(emb["sst"], y["sst"])
    proba = np.sort(base.predict_proba(emb["pool"]), axis=1)
    frame = pd.DataFrame({"_margin": proba[:, -1] - proba[:, -2], "_confidence": proba[:, -1]})
    for n in (100, 300, 1000):
        active, _ = select(frame, n, emb["pool"], strategy="margin")
        random_pick = np.random.default_rng(5).choice(len(pool), size=n, replace=False)
        result[f"active-{n}"] = fit(np.asarray(active))
        result[f"random-{n}"] = fit(random_pick)
    result[f"ceiling-{len(pool)}"] = fit(np.arange(len(pool)))
    log.info("text feedback: %s", result)
    return result


def gap_closed(result: dict[str, Any], key: str) -> float | None:
    ceiling = next(v for k, v in result.items() if k.startswith("ceiling"))
    gap = ceiling["new"] - result["base"]["new"]
    return (result[key]["new"] - result["base"]["new"]) / gap if gap > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drift", "feedback", "all"], default="all")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--skip-tabular", action="store_true")
    parser.add_argument("--window", type=float, default=500.0, help="seconds = requests in the check window")
    parser.add_argument("--check-every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="draws of the tabular feedback pool")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    for noisy in ("shipyard.training", "shipyard.pipeline", "shipyard.data", "shipyard.evaluation"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        work = Path(tmp)
        if not args.skip_tabular:
            results["drift_tabular"], base_run = drift_tabular(work, args)
            print(json.dumps({"drift_tabular": results["drift_tabular"]}, indent=2), flush=True)
        if args.part in ("drift", "all") and not args.skip_text:
            results["drift_text"] = drift_text(work, args)
            print(json.dumps({"drift_text": results["drift_text"]}, indent=2), flush=True)
        if args.part in ("feedback", "all"):
            if not args.skip_tabular:
                results["feedback_tabular"] = feedback_tabular(work, base_run, args.repeats)
            if not args.skip_text:
                results["feedback_text"] = feedback_text(work)
    for key in ("feedback_tabular", "feedback_text"):
        if key in results:
            results[key]["gap_closed"] = {
                k: gap_closed(results[key], k) for k in results[key] if k.startswith(("active", "random"))
            }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
