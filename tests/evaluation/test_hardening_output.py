"""Issue #12 (output, reports, out-of-scope rejection): tiny jobs refused, best_epoch, predict output, `runs list`
in a pipe, regression explanations, mixed-type warning, throughput figures, large confusion matrices, abstention."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli import app
from shipyard.config.schema import Job, SplitConfig
from shipyard.data.splits import split_frame
from shipyard.data.types import infer_column_types
from shipyard.errors import ShipyardError
from shipyard.store.runs import RunStore

runner = CliRunner()
N_CLASSES = 110  # above 100 columns, pandas warns about one-by-one column inserts


def _many_class_csv(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for c in range(N_CLASSES):
        for _ in range(3):
            rows.append({"a": c + rng.normal(0, 0.1), "b": -c + rng.normal(0, 0.1), "label": f"c{c:03d}"})
    path = folder / "many.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _regression_csv(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 3 * x[:, 0] - x[:, 1] + 10})
    path = folder / "reg.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def many_class_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("many")
    csv = _many_class_csv(folder)
    job = Job(
        task="classification",
        data={"source": {"path": str(csv)}, "split": {"validation": 0.34, "test": 0.34}},
        model={"type": "mlp", "hidden": [16]},
        training={"epochs": 3, "batch_size": 55, "learning_rate": 0.01, "device": "cpu", "log_every_steps": 1},
    )
    result = shipyard.run(job, run_dir=folder / "run")
    return {"folder": folder, "csv": csv, "result": result}


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("reg")
    csv = _regression_csv(folder)
    job = Job(
        task="regression",
        data={"source": {"path": str(csv)}, "target": "y"},
        model={"type": "mlp", "hidden": [8]},
        training={"epochs": 2, "device": "cpu"},
    )
    return {"folder": folder, "csv": csv, "result": shipyard.run(job, run_dir=folder / "run")}


# ------------------------------------------------------------------------------------------- tiny jobs
def test_a_three_row_job_is_refused_instead_of_finishing_without_validation_and_test() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})
    with pytest.raises(ShipyardError) as err:
        split_frame(frame, SplitConfig(), seed=0, task="classification", target="label")
    assert "validation split is empty" in err.value.message and "3 row" in err.value.message
    assert "data.split.validation" in (err.value.where or "")
    # asking for no held-out rows is still allowed
    parts = split_frame(frame, SplitConfig(validation=0, test=0), seed=0, task="classification", target="label")
    assert len(parts["train"]) == 3


# ------------------------------------------------------------------------------------------- best_epoch
def test_best_epoch_is_the_last_epoch_without_early_stopping(many_class_run: dict[str, Any]) -> None:
    training = many_class_run["result"].metrics["training"]
    assert training["epochs"] == 3
    assert training["best_epoch"] == 3


# ------------------------------------------------------------------------------------------- throughput
def test_logged_throughput_covers_wall_time_like_metrics_json(many_class_run: dict[str, Any]) -> None:
    run_dir = many_class_run["result"].run_dir
    steps = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    rates = [e["examples_per_s"] for e in steps if e["event"] == "step"]
    fit = many_class_run["result"].fit
    assert len(rates) == fit.global_step == 6  # 110 training rows, batches of 55, a line per step
    # each line's rate covers the wall time since the previous line (evaluation and checkpoints included), so the
    # lines' times add up to most of the run's time (all but what follows the last line: the final evaluation and
    # checkpoint, a large share of so short a run on a busy machine); one step's own compute time, what the old
    # figure measured, covers a few per cent of it
    covered = sum(55 / r for r in rates)
    assert covered > 0.3 * fit.seconds, (rates, fit.seconds)


def test_progress_is_plain_periodic_log_lines_off_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    from shipyard.training.progress import TrainProgress

    caplog.set_level(logging.INFO, logger="shipyard.training.progress")
    with TrainProgress(10, enabled=True, terminal=False, every_steps=4) as progress:
        for _ in range(10):
            progress.step(0.5, 1, 10)
    lines = [r.getMessage() for r in caplog.records if r.name == "shipyard.training.progress"]
    assert len(lines) == 3, lines  # steps 4, 8 and the last one
    assert lines[-1].startswith("step 10/10") and "ex/s" in lines[-1] and "left 0:00:00" in lines[-1]


# ------------------------------------------------------------------------------------------- predict
def test_predict_without_output_writes_beside_the_input_without_pandas_warnings(
    many_class_run: dict[str, Any],
) -> None:
    csv = many_class_run["csv"]
    rows = many_class_run["folder"] / "rows.csv"
    pd.read_csv(csv).drop(columns=["label"]).head(7).to_csv(rows, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        from shipyard.inference import predict_file

        assert predict_file(many_class_run["result"].run_dir, rows, None) == 7
    res = runner.invoke(app, ["predict", str(many_class_run["result"].run_dir), "--input", str(rows)])
    assert res.exit_code == 0, res.output
    written = rows.with_name("rows.predictions.csv")
    assert "7 predictions written to" in res.output and written.name in res.output.replace("\n", "")
    assert "PerformanceWarning" not in res.output
    out = pd.read_csv(written)
    assert len(out) == 7 and out.columns[0] == "label" and len(out.columns) == 1 + N_CLASSES


# ------------------------------------------------------------------------------------------- runs list
def test_runs_list_off_a_terminal_prints_whole_tab_separated_fields(tmp_path: Path) -> None:
    store = RunStore.for_root(tmp_path)
    run_id = "20260101-120000-a-rather-long-job-name-for-a-table-3f9a2c"
    store.start_run(
        run_id,
        tmp_path / run_id,
        name=run_id,
        task="classification",
        model_type="transformer",
        config={},
        config_hash="h",
        seed=0,
    )
    store.finish_run(run_id, status="finished", metrics={"test": {"accuracy": 0.9}}, duration_s=3.0)
    res = runner.invoke(app, ["runs", "list", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split("\t")[:5] == ["id", "name", "status", "task", "model"]
    fields = lines[1].split("\t")
    assert fields[0] == run_id and fields[2] == "finished" and fields[5] == "test.accuracy=0.9"


# ------------------------------------------------------------------------------------------- explain
def test_regression_explanations_carry_the_predicted_value(regression_run: dict[str, Any]) -> None:
    from shipyard.artifact import Artifact
    from shipyard.evaluation.explain import explain_run

    run_dir = regression_run["result"].run_dir
    rows = explain_run(run_dir, regression_run["csv"], n=3)
    art = Artifact.load(run_dir)
    expected = art.predict_frame(pd.read_csv(regression_run["csv"]).drop(columns=["y"]).head(3))["value"]
    assert [r["prediction"] for r in rows] == pytest.approx([float(v) for v in expected], abs=1e-4)


# ------------------------------------------------------------------------------------------- mixed types
def test_a_column_mixing_numbers_and_text_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.DataFrame(
        {"age": ["31", "45", "unknown", "52", "40+", "28", "n/a", "61", "33", "?"], "label": list("ababababab")}
    )
    caplog.set_level(logging.WARNING, logger="shipyard.data.types")
    types = infer_column_types(frame, ["age"], "label")
    assert types["age"] == "categorical"
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "'age' mixes numbers (60% of values)" in text and "'unknown'" in text


# ------------------------------------------------------------------------------------------- abstention
def _intent_frame(rng: np.random.Generator, per_class: int, oos: int) -> pd.DataFrame:
    """Four in-scope "intents" as separated clusters; out-of-scope queries sit between them, near the origin."""
    centers = {"balance": (3, 3), "transfer": (-3, 3), "card": (3, -3), "loan": (-3, -3)}
    rows = [
        {"a": cx + rng.normal(0, 0.6), "b": cy + rng.normal(0, 0.6), "label": name}
        for name, (cx, cy) in centers.items()
        for _ in range(per_class)
    ]
    rows += [{"a": rng.normal(0, 0.4), "b": rng.normal(0, 0.4), "label": "oos"} for _ in range(oos)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def abstain_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("oos")
    rng = np.random.default_rng(3)
    paths = {}
    for name, per_class, oos in (("train", 100, 3), ("val", 20, 20), ("test", 20, 40)):
        paths[name] = folder / f"{name}.csv"
        _intent_frame(rng, per_class, oos).to_csv(paths[name], index=False)
    job = Job(
        task="classification",
        data={
            "source": {"path": str(paths["train"])},
            "validation_source": {"path": str(paths["val"])},
            "test_source": {"path": str(paths["test"])},
        },
        model={"type": "mlp", "hidden": [16]},
        training={"epochs": 6, "batch_size": 32, "learning_rate": 0.01, "device": "cpu"},
        evaluation={"abstain": {"target_precision": 0.95}},
    )
    return {"folder": folder, "test": paths["test"], "result": shipyard.run(job, run_dir=folder / "run")}


def test_out_of_scope_queries_are_rejected_below_a_threshold_calibrated_on_validation(
    abstain_run: dict[str, Any],
) -> None:
    result = abstain_run["result"]
    abstain = result.metrics["abstain"]
    assert 0 < abstain["threshold"] < 1 and abstain["label"] == "oos" and not abstain["fixed"]
    test = abstain["test"]
    # without rejection the rarely seen out-of-scope class is (almost) never predicted
    plain_recall = result.metrics["test"]["per_class"]["oos"]["recall"]
    assert plain_recall < 0.3
    assert test["out_of_scope"]["rows"] == 40 and test["out_of_scope"]["recall"] >= 0.8
    assert test["out_of_scope"]["precision"] >= 0.8
    assert test["accuracy_on_kept"] >= 0.95 and 0.4 < test["coverage"] < 0.9
    meta = json.loads((result.run_dir / "model" / "shipyard.json").read_text())
    assert meta["abstain"] == {"threshold": abstain["threshold"], "label": "oos"}
    assert "Out-of-scope rejection" in result.report.read_text()


def test_predict_answers_the_out_of_scope_label_with_abstained(abstain_run: dict[str, Any]) -> None:
    from shipyard.artifact import Artifact
    from shipyard.inference import predict_file

    out_file = abstain_run["folder"] / "pred.csv"
    predict_file(abstain_run["result"].run_dir, abstain_run["test"], out_file)
    out = pd.read_csv(out_file)
    truth = pd.read_csv(abstain_run["test"])["label"]
    assert out["abstained"].dtype == bool and (out.loc[out["abstained"], "label"] == "oos").all()
    assert out.loc[truth == "oos", "abstained"].mean() >= 0.8
    records = Artifact.load(abstain_run["result"].run_dir).predict_records([{"a": 0.0, "b": 0.0}, {"a": 3, "b": 3}])
    assert records[0]["abstained"] is True and records[0]["label"] == "oos"
    assert records[1] == {**records[1], "abstained": False, "label": "balance"}
