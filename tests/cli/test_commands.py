"""The thin CLI commands: init, validate, runs list/show/compare."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.store.runs import RunStore

runner = CliRunner()


def test_init_writes_a_config_that_validates(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("age,city,label\n" + "".join(f"{20 + i},{'ab'[i % 2]},{'yn'[i % 2]}\n" for i in range(30)))
    out = tmp_path / "job.yaml"
    res = runner.invoke(app, ["init", "--data", str(data), "--target", "label", "--output", str(out)])
    assert res.exit_code == 0, res.output
    check = runner.invoke(app, ["validate", str(out)])
    assert check.exit_code == 0 and "valid" in check.output
    again = runner.invoke(app, ["init", "--data", str(data), "--target", "label", "--output", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_runs_list_show_compare(tmp_path: Path) -> None:
    store = RunStore.for_root(tmp_path)
    for run_id, lr, acc in (("20260101-a", 0.1, 0.80), ("20260102-b", 0.01, 0.85)):
        store.start_run(
            run_id,
            tmp_path / run_id,
            name=run_id,
            task="classification",
            model_type="mlp",
            config={"training": {"learning_rate": lr}},
            config_hash="h" + run_id,
            seed=0,
        )
        store.finish_run(run_id, status="finished", metrics={"test": {"accuracy": acc}}, duration_s=1.0)
    listed = runner.invoke(app, ["runs", "list", "--root", str(tmp_path)])
    assert listed.exit_code == 0 and "20260101-a" in listed.output and "20260102-b" in listed.output
    shown = runner.invoke(app, ["runs", "show", "20260102", "--root", str(tmp_path)])
    assert shown.exit_code == 0 and "0.85" in shown.output
    compared = runner.invoke(app, ["runs", "compare", "20260101-a", "20260102-b", "--root", str(tmp_path)])
    assert compared.exit_code == 0
    assert "learning_rate" in compared.output and "accuracy" in compared.output
    missing = runner.invoke(app, ["runs", "show", "nope", "--root", str(tmp_path)])
    assert missing.exit_code == 2 and missing.output.startswith("error:")
