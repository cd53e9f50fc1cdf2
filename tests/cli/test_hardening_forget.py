"""`shipyard data forget` erases a person from every stored file, and `shipyard serve` warns about (or, with
--strict, refuses) a model flagged needs_retraining (issue #12, item 2)."""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli import app
from shipyard.config.schema import Job
from shipyard.store.runs import RunStore

N_RARE = 12  # rows with a city of their own and a very low income: some land in train, some in test


def _strings(value: float) -> set[str]:
    """How a figure may be written in a file (JSON repr, report / card rounding)."""
    return {repr(value), f"{value:.6g}", f"{value:.4f}", f"{value:,.2f}", f"{value:.2f}"}


def _texts(run_dir: Path) -> dict[str, str]:
    """Every non-binary file of the run folder, and the run store's rows."""
    out = {}
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".html", ".yaml"):
            out[str(path.relative_to(run_dir))] = path.read_text(encoding="utf-8")
    with sqlite3.connect(run_dir.parent / "shipyard.db") as conn:
        out["shipyard.db"] = "\n".join(str(row) for row in conn.execute("SELECT * FROM runs"))
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("forget_e2e")
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 2))
    city = rng.choice(["north", "south"], size=n).astype(object)
    income = 1000 + 300 * x[:, 0] + 50 * (city == "north") + rng.normal(size=n)
    for i in range(N_RARE):
        city[i] = f"hamlet{i}"
        income[i] = -5000.0 - 111.125 * (i + 1)  # the lowest incomes: one of them is each split's min
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "city": city, "user_id": np.arange(1000, 1000 + n)})
    frame["income"] = income
    frame.to_csv(root / "d.csv", index=False)
    raw = {
        "task": "regression",
        "data": {
            "source": {"path": str(root / "d.csv")},
            "target": "income",
            "id_column": "user_id",
            "split": {"method": "random", "validation": 0.2, "test": 0.25},
        },
        "model": {"type": "mlp", "hidden": [8]},
        "training": {"epochs": 2, "batch_size": 64, "seed": 0, "num_threads": 1},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shipyard.run(Job.model_validate(raw), run_dir=root / "runs" / "r1", show_progress=False).run_dir


def _rare_user(run_dir: Path, split: str) -> tuple[int, float, str]:
    frame = pd.read_parquet(run_dir / "splits" / f"{split}.parquet")
    rare = frame[frame["city"].str.startswith("hamlet")].sort_values("income")
    row = rare.iloc[0]  # the split's minimum income
    return int(row["user_id"]), float(row["income"]), str(row["city"])


def test_forget_erases_the_person_from_every_stored_file(run_dir: Path) -> None:
    train_id, train_income, train_city = _rare_user(run_dir, "train")
    test_id, test_income, _ = _rare_user(run_dir, "test")
    before = _texts(run_dir)
    summary = json.loads(before["data_summary.json"])
    assert summary["target_stats"]["train"]["min"] == train_income  # the leak, present before
    assert train_city in before[str(Path("model") / "preprocessor.json")]
    rows_before = summary["rows"]

    res = CliRunner().invoke(app, ["data", "forget", str(run_dir), "--where", f"user_id in [{train_id}, {test_id}]"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["by_split"] == {"train": 1, "validation": 0, "test": 1}
    assert result["vocabulary_levels_replaced"] == 1
    assert {"data_summary.json", "metrics.json", "report.html", "model_card.md"} <= set(result["regenerated"])

    after = _texts(run_dir)
    for name, text in after.items():
        for value in (train_income, test_income):
            for shown in _strings(value):
                assert shown not in text, f"{shown} (an erased row's income) is still in {name}"
        assert train_city not in text, f"the erased row's category {train_city!r} is still in {name}"
        if name.endswith((".json", ".md")):  # (digits occur by chance in the report's base64 images)
            assert str(train_id) not in text, f"the erased row's id is still in {name}"
    summary = json.loads(after["data_summary.json"])
    assert summary["rows"]["train"] == rows_before["train"] - 1 and summary["rows"]["test"] == rows_before["test"] - 1
    assert summary["erasure"]["rows_removed"] == 2
    metrics = json.loads(after["metrics.json"])
    assert metrics["test"]["n"] == rows_before["test"] - 1 and "training" in metrics
    assert json.loads(after[str(Path("model") / "shipyard.json")])["metrics"]["test"]["n"] == metrics["test"]["n"]
    assert "still derive from the erased rows" in after["model_card.md"]
    assert "Erasure" in after["report.html"]

    # the preprocessor keeps its shape: the placeholder takes the erased level's index, other inputs unchanged
    pre = json.loads(after[str(Path("model") / "preprocessor.json")])
    old = json.loads(before[str(Path("model") / "preprocessor.json")])
    assert len(pre["categories"]["city"]["levels"]) == len(old["categories"]["city"]["levels"])
    i = old["categories"]["city"]["levels"].index(train_city)
    assert pre["categories"]["city"]["levels"][i] == "__erased_1__"
    assert pre["feature_names"][old["feature_names"].index(f"city={train_city}")] == "city=__erased_1__"
    meta = json.loads(after[str(Path("model") / "shipyard.json")])
    assert meta["erasure"]["needs_retraining"] is True and meta["erasure"]["rows_removed"] == 2
    from shipyard.artifact import Artifact

    remaining = pd.read_parquet(run_dir / "splits" / "test.parquet").drop(columns=["income"])
    assert len(Artifact.load(run_dir).predict_frame(remaining)["value"]) == len(remaining)


def test_serve_warns_about_a_flagged_model_and_strict_refuses(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not RunStore.for_root(run_dir.parent).get(run_dir.name).flags.get("needs_retraining"):
        res = CliRunner().invoke(app, ["data", "forget", str(run_dir), "--where", "user_id == 1299"])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["serve", str(run_dir), "--no-auth", "--strict"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "needs retraining" in res.output

    import shipyard.cli.serve as serve_cli

    started: list[Any] = []
    monkeypatch.setattr(serve_cli, "run_draining", lambda config, state: started.append(config))
    res = CliRunner().invoke(app, ["serve", str(run_dir), "--no-auth"])
    assert res.exit_code == 0, res.output
    assert started and "WARNING" in res.output and "needs retraining" in res.output
