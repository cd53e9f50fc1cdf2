"""Tabular models against what a user would reach for instead: Adult (official test set) and California housing.

Each data set, in the same run and on the same rows:
- shipyard `lightgbm` (the job below, the family's defaults): trained on the train split,
  early-stopped on the validation split;
- shipyard `auto` (when `--auto-budget` is given and the `auto` model type exists): candidates and a greedy
  ensemble under that time budget;
- the baseline: scikit-learn `HistGradientBoostingClassifier` / `Regressor` with default settings (categories
  native through the pandas `category` dtype, its own internal early stopping), fitted on the same train +
  validation rows shipyard saw and scored on the same test rows (shipyard's stored `splits/test.parquet`);
- AutoGluon `TabularPredictor` is not run: it would downgrade the environment's pandas (3.x to 2.3) and pyarrow
  (26 to 24), which the rest of the platform depends on.

Adult: `adult.data` for training (10 % of it for validation), `adult.test` for testing (exact duplicate rows are
dropped by the job's cleaning: 5 of 16,281). California: a random 10 % test split and 10 % validation, seed 0.

    SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/tabular.py [--auto-budget 10m] [--out results.json]
        [--only california --derived]   # `examples/california_lightgbm.yaml`'s derived features, both sides
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
import yaml

import shipyard
from shipyard.config.schema import Job
from shipyard.data.derive import derive_columns
from shipyard.settings import data_dir

CAL_COLUMNS = [
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
    "median_house_value",
]


def adult_job(model: dict[str, Any]) -> dict[str, Any]:
    src = {"path": str(data_dir() / "adult" / "adult.data"), "skip_initial_space": True, "na_values": ["?"]}
    test = {**src, "path": str(data_dir() / "adult" / "adult.test"), "strip_suffix": {"Y": "."}}
    return {
        "name": "bench-adult",
        "task": "classification",
        "data": {
            "source": src,
            "test_source": test,
            "target": "Y",
            "split": {"method": "stratified", "validation": 0.1, "test": 0.0},
        },
        "model": model,
        "training": {"seed": 0},
    }


def california_derive() -> dict[str, str]:
    """The derived features of `examples/california_lightgbm.yaml` (one source of truth for bench and example)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "california_lightgbm.yaml"
    return dict(yaml.safe_load(example.read_text())["data"]["derive"])


def california_job(model: dict[str, Any], derive: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": "bench-california",
        "task": "regression",
        "data": {
            "source": {
                "path": str(data_dir() / "california_housing" / "cal_housing.data"),
                "format": "csv",
                "header": False,
                "column_names": CAL_COLUMNS,
            },
            "target": "median_house_value",
            "split": {"method": "random", "validation": 0.1, "test": 0.1},
            **({"derive": derive} if derive else {}),
        },
        "model": model,
        "training": {"seed": 0},
    }


def run_shipyard(raw: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    started = time.perf_counter()
    result = shipyard.run(Job.model_validate(raw), run_dir=work / name)
    seconds = time.perf_counter() - started
    out = {"run_dir": str(result.run_dir), "test": result.metrics["test"], "seconds": round(seconds, 1)}
    if "auto" in result.metrics:  # each candidate's scores, time and weight: the evidence behind the figure
        keys = ("candidate", "status", "validation", "oof", "test", "weight", "seconds", "reason")
        out["leaderboard"] = [{k: r.get(k) for k in keys} for r in result.metrics["auto"]["leaderboard"]]
        out["auto_seconds"] = result.metrics["auto"]["seconds"]
    return out


def _frame(run_dir: Path, split: str, target: str) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_parquet(run_dir / "splits" / f"{split}.parquet")
    return frame, frame.pop(target)


def run_hgb(run_dir: Path, target: str, task: str, derive: dict[str, str] | None = None) -> dict[str, Any]:
    """scikit-learn's gradient boosting, defaults, on shipyard's train + validation rows, scored on its test rows;
    with ``derive``, on the same derived features shipyard's model computes (shipyard.data.derive)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import accuracy_score, r2_score

    parts = [_frame(run_dir, s, target) for s in ("train", "validation")]
    x = pd.concat([p[0] for p in parts], ignore_index=True)
    y = pd.concat([p[1] for p in parts], ignore_index=True)
    x_test, y_test = _frame(run_dir, "test", target)
    if derive:
        x, x_test = derive_columns(x, derive), derive_columns(x_test, derive)
    cats = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    for c in cats:  # the pandas category dtype is how HistGradientBoosting's default finds categorical columns
        levels = sorted(set(x[c].dropna().astype(str)) | set(x_test[c].dropna().astype(str)))
        x[c] = pd.Categorical(x[c].astype(str).where(x[c].notna()), categories=levels)
        x_test[c] = pd.Categorical(x_test[c].astype(str).where(x_test[c].notna()), categories=levels)
    started = time.perf_counter()
    if task == "classification":
        model = HistGradientBoostingClassifier(random_state=0).fit(x, y.astype(str))
        score = {"accuracy": float(accuracy_score(y_test.astype(str), model.predict(x_test)))}
    else:
        model = HistGradientBoostingRegressor(random_state=0).fit(x, y.astype(float))
        score = {"r2": float(r2_score(y_test.astype(float), model.predict(x_test)))}
    return {"test": score, "seconds": round(time.perf_counter() - started, 1), "rows": len(x), "test_rows": len(x_test)}


def bench_derived(work: Path, auto_budget: str | None = None) -> list[dict]:
    """California with the example's derived features: shipyard `lightgbm` (and `auto`, with ``auto_budget``)
    against HistGradientBoosting on the same derived columns (each derived feature computed from the raw columns
    of the same stored rows)."""
    derive = california_derive()
    lgb = run_shipyard(california_job({"type": "lightgbm"}, derive), work, "california-lightgbm-derived")
    rows = [{"data": "california", "model": "shipyard lightgbm + data.derive", "r2": lgb["test"]["r2"]}]
    rows[-1]["seconds"] = lgb["seconds"]
    print(json.dumps(rows[-1]), flush=True)
    if auto_budget:
        auto = run_shipyard(
            california_job({"type": "auto", "time_budget": auto_budget}, derive), work, "california-auto-derived"
        )
        rows.append({"data": "california", "model": f"shipyard auto ({auto_budget}) + data.derive"})
        rows[-1].update({"r2": auto["test"]["r2"], "seconds": auto["seconds"], "leaderboard": auto["leaderboard"]})
        print(json.dumps(rows[-1]), flush=True)
    raw = run_hgb(Path(lgb["run_dir"]), "median_house_value", "regression")  # the baseline, raw columns
    rows.append({"data": "california", "model": "sklearn HistGradientBoosting (defaults)"})
    rows[-1].update({"r2": raw["test"]["r2"], "seconds": raw["seconds"]})
    hgb = run_hgb(Path(lgb["run_dir"]), "median_house_value", "regression", derive)
    rows.append({"data": "california", "model": "sklearn HistGradientBoosting (defaults) + the same derived"})
    rows[-1].update({"r2": hgb["test"]["r2"], "seconds": hgb["seconds"]})
    for r in rows:
        r["r2 - baseline"] = round(r["r2"] - raw["test"]["r2"], 4)
    return rows


def bench(name: str, make_job: Any, target: str, task: str, work: Path, auto_budget: str | None) -> list[dict]:
    key = "accuracy" if task == "classification" else "r2"
    rows = []
    lgb = run_shipyard(make_job({"type": "lightgbm"}), work, f"{name}-lightgbm")
    rows.append({"data": name, "model": "shipyard lightgbm", key: lgb["test"][key], "seconds": lgb["seconds"]})
    print(json.dumps(rows[-1]), flush=True)  # each figure as soon as it is known (a long run may be stopped)
    if auto_budget:
        auto = run_shipyard(make_job({"type": "auto", "time_budget": auto_budget}), work, f"{name}-auto")
        rows.append(
            {
                "data": name,
                "model": f"shipyard auto ({auto_budget})",
                key: auto["test"][key],
                "seconds": auto["seconds"],
                "leaderboard": auto["leaderboard"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    hgb = run_hgb(Path(lgb["run_dir"]), target, task)
    rows.append(
        {
            "data": name,
            "model": "sklearn HistGradientBoosting (defaults)",
            key: hgb["test"][key],
            "seconds": hgb["seconds"],
        }
    )
    base = hgb["test"][key]
    for r in rows:
        r[f"{key} - baseline"] = round(r[key] - base, 4)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--auto-budget", default=None, help="also run `model: {type: auto}` with this time budget")
    parser.add_argument("--only", choices=["adult", "california"], default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--derived", action="store_true", help="California with the example's derived features (data.derive) instead"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "adult"):
            rows += bench("adult", adult_job, "Y", "classification", work, args.auto_budget)
        if args.only in (None, "california"):
            if args.derived:  # the derived-feature comparison on its own (the same rows as the plain one)
                rows += bench_derived(work, args.auto_budget)
            else:
                rows += bench("california", california_job, "median_house_value", "regression", work, args.auto_budget)
    for r in rows:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
