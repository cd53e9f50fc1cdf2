"""Text models with their own vocabulary against TF-IDF + logistic regression, on ChnSentiCorp (Chinese reviews).

The same rows for every model: ChnSentiCorp's 7,765 non-empty reviews, a stratified split of 80 % train, 10 %
validation and 10 % test (seed 0). Shipyard's models train on train and early-stop on validation; the baseline,
scikit-learn `TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)` + `LogisticRegression`
(defaults otherwise), fits train + validation. All are scored on the test rows (shipyard's stored
`splits/test.parquet`). `--auto-budget` adds `model: {type: auto}` over the from-scratch families.

`--auto-job FILE` runs an `auto` example as it is (examples/chnsenticorp_auto.yaml, sst2_auto.yaml,
financial_phrasebank_auto.yaml; `--seed` replaces its training seed) and prints its leaderboard, then the TF-IDF +
logistic regression baseline fitted on the same run's stored train + validation rows and scored on its test rows
(`--baseline-analyzer word` for word 1-2-grams instead of character 1-3-grams).

    SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/text_models.py [--models text_linear,text_bag]
        [--auto-budget 8m] [--out results.json]
    SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/text_models.py --auto-job examples/sst2_auto.yaml
        --baseline-analyzer word [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import shipyard
from shipyard.config.schema import Job
from shipyard.settings import data_dir

# per family: the model section and the training settings the benchmark uses
MODELS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "text_linear": ({"type": "text_linear"}, {"epochs": 6, "batch_size": 64, "learning_rate": 0.01}),
    # word 1-2-grams over jieba's segmentation (needs the `zh` extra: pip install jieba)
    "text_linear_jieba": (
        {"type": "text_linear", "tokenizer": "jieba", "ngram_range": [1, 2]},
        {"epochs": 6, "batch_size": 64, "learning_rate": 0.01},
    ),
    "text_bag": (
        {"type": "text_bag", "weighting": "tfidf", "dim": 64},
        {"epochs": 5, "batch_size": 64, "learning_rate": 0.005},
    ),
    "text_cnn": (
        {"type": "text_cnn", "dim": 64, "filters": 64, "widths": [2, 3, 4]},
        {"epochs": 5, "batch_size": 64, "learning_rate": 0.002},
    ),
}


def job(model: dict[str, Any], training: dict[str, Any], max_length: int) -> dict[str, Any]:
    return {
        "name": f"bench-chnsenticorp-{model['type']}",
        "task": "classification",
        "data": {
            "source": {"path": str(data_dir() / "chnsenticorp" / "ChnSentiCorp_htl_all.csv")},
            "target": "label",
            "features": [{"name": "review", "type": "text"}],
            "split": {"method": "stratified", "validation": 0.1, "test": 0.1},
            "cleaning": {"text_missing": "drop"},
            "text": {"max_length": max_length},
        },
        "model": model,
        "training": {"seed": 0, "early_stopping": {"metric": "loss", "patience": 2}, **training},
    }


def baseline(run_dir: Path, text: str = "review", target: str = "label", analyzer: str = "char") -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def read(split: str) -> pd.DataFrame:
        return pd.read_parquet(run_dir / "splits" / f"{split}.parquet")

    fit = pd.concat([read("train"), read("validation")], ignore_index=True)
    test = read("test")
    started = time.perf_counter()
    grams = (1, 3) if analyzer == "char" else (1, 2)
    vec = TfidfVectorizer(analyzer=analyzer, ngram_range=grams, sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(fit[text]), fit[target].astype(str))
    accuracy = float((clf.predict(vec.transform(test[text])) == test[target].astype(str)).mean())
    return {"accuracy": accuracy, "seconds": round(time.perf_counter() - started, 1), "test_rows": len(test)}


def run_auto_job(path: Path, seed: int | None, analyzer: str, keep: Path | None) -> list[dict[str, Any]]:
    """An auto example as it is: its leaderboard, the ensemble's test score and the baseline on the same rows."""
    from shipyard.config import load_job

    job = load_job(path)
    if seed is not None:
        job.training.seed = seed
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = (keep or Path(tmp)) / f"{job.name}-seed{job.training.seed}"
        started = time.perf_counter()
        result = shipyard.run(job, run_dir=run_dir)
        seconds = round(time.perf_counter() - started, 1)
        auto = result.metrics["auto"]
        for row in auto["leaderboard"]:
            print(
                json.dumps(
                    {
                        k: row.get(k)
                        for k in ("candidate", "status", "validation", "test", "weight", "seconds", "reason")
                    }
                ),
                flush=True,
            )
        rows = [
            {
                "model": f"shipyard auto ({path.name}, seed {job.training.seed})",
                "accuracy": result.metrics["test"]["accuracy"],
                "validation": result.metrics["validation"]["accuracy"],
                "seconds": seconds,
                "budget_s": auto["budget_s"],
            }
        ]
        text = job.data.feature_specs()[0].name
        base = baseline(result.run_dir, text, job.data.target, analyzer)
    rows.append({"model": f"TF-IDF {analyzer} + LogisticRegression", **base})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="text_linear,text_bag,text_cnn")
    parser.add_argument("--auto-budget", default=None)
    parser.add_argument("--max-length", type=int, default=256, help="characters kept per review")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--auto-job", type=Path, default=None, help="an auto example file, run as it is")
    parser.add_argument("--seed", type=int, default=None, help="with --auto-job: its training seed")
    parser.add_argument("--baseline-analyzer", choices=["char", "word"], default="char")
    parser.add_argument("--keep", type=Path, default=None, help="with --auto-job: keep the run folder here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.auto_job:
        rows = run_auto_job(args.auto_job, args.seed, args.baseline_analyzer, args.keep)
        for r in rows:
            r["accuracy - baseline"] = round(r["accuracy"] - rows[-1]["accuracy"], 4)
            print(json.dumps(r))
        if args.out:
            args.out.write_text(json.dumps(rows, indent=2))
        return
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = []
        names = [m for m in args.models.split(",") if m]
        plan = [(name, *MODELS[name]) for name in names]
        if args.auto_budget:
            auto = {"type": "auto", "time_budget": args.auto_budget, "families": names or list(MODELS)}
            plan.append((f"auto ({args.auto_budget})", auto, {}))
        for name, model, training in plan:
            started = time.perf_counter()
            result = shipyard.run(Job.model_validate(job(model, training, args.max_length)), run_dir=work / name)
            seconds = round(time.perf_counter() - started, 1)
            accuracy = result.metrics["test"]["accuracy"]
            rows.append({"model": f"shipyard {name}", "accuracy": accuracy, "seconds": seconds})
            runs.append(result.run_dir)
            print(json.dumps(rows[-1]), flush=True)
        base = baseline(runs[0])
        rows.append({"model": "TF-IDF char 1-3 + LogisticRegression", **base})
    for r in rows:
        r["accuracy - baseline"] = round(r["accuracy"] - base["accuracy"], 4)
        print(json.dumps(r))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
