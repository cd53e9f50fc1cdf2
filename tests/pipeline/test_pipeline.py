"""run_job, the pipeline's one entry: what a finished run folder holds, its record in the run store, and what it
refuses before anything is written (bad data) or before it trains on (a resume with another config)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from shipyard.errors import ShipyardError
from shipyard.io import INCOMPLETE, RUN_INFO
from shipyard.pipeline import RunResult, config_hash, run_job
from shipyard.store.runs import RunStore
from tiny_runs import tiny_job, write_rows


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    root = tmp_path_factory.mktemp("pipeline")
    job = tiny_job(write_rows(root / "rows.csv"))
    return run_job(job, base_dir=root, run_dir=root / "runs" / "r1", show_progress=False)


def test_a_finished_run_folder_holds_every_output(finished: RunResult) -> None:
    run = finished.run_dir
    for name in ("config.yaml", RUN_INFO, "data_summary.json", "metrics.json", "train_log.jsonl", "report.html"):
        assert (run / name).is_file(), name
    assert (run / "model_card.md").is_file() and (run / "model" / "shipyard.json").is_file()
    assert sorted(p.name for p in (run / "splits").iterdir()) == ["test.parquet", "train.parquet", "validation.parquet"]
    assert not (run / INCOMPLETE).exists()  # removed last, once report and card are written
    assert set(finished.metrics) >= {"validation", "test", "training"}
    assert finished.report == run / "report.html"


def test_run_json_and_config_record_the_job(finished: RunResult) -> None:
    run = finished.run_dir
    info = json.loads((run / RUN_INFO).read_text())
    assert info == {"run_id": "r1", "base_dir": str(run.parent.parent.resolve())}
    assert yaml.safe_load((run / "config.yaml").read_text())["name"] == "tiny"
    meta = json.loads((run / "model" / "shipyard.json").read_text())
    assert meta["run_id"] == "r1" and meta["read_options"]["format"] in (None, "csv")
    split_rows = sum(len(pd.read_parquet(p)) for p in (run / "splits").iterdir())
    assert split_rows == 80


def test_the_store_has_the_finished_run(finished: RunResult) -> None:
    record = RunStore.for_root(finished.run_dir.parent).get("r1")
    assert record.status == "finished" and record.task == "classification" and record.model_type == "mlp"
    assert record.metrics["test"] == finished.metrics["test"]
    assert record.config_hash == config_hash(tiny_job(Path(record.config["data"]["source"]["path"])))


def test_bad_data_is_refused_before_the_run_folder_exists(tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.csv")
    job = tiny_job(rows, data={"source": {"path": str(rows)}, "target": "no_such_column"})
    run_dir = tmp_path / "runs" / "bad"
    with pytest.raises(ShipyardError, match="no_such_column"):
        run_job(job, base_dir=tmp_path, run_dir=run_dir, show_progress=False)
    assert not run_dir.exists() and not (tmp_path / "runs").exists()


def test_resume_with_a_changed_config_is_refused(finished: RunResult) -> None:
    run = finished.run_dir
    (run / "checkpoints").mkdir(exist_ok=True)  # something to resume from
    source = yaml.safe_load((run / "config.yaml").read_text())["data"]["source"]["path"]
    changed = tiny_job(Path(source), training={"epochs": 1, "batch_size": 16, "learning_rate": 0.5, "seed": 0})
    with pytest.raises(ShipyardError, match="learning_rate"):
        run_job(changed, base_dir=run.parent, run_dir=run, resume=True, show_progress=False)
    assert not (run / INCOMPLETE).exists()  # refused before the run was claimed again


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    job = tiny_job(write_rows(tmp_path / "rows.csv"))
    with pytest.raises(ShipyardError, match="nothing to resume"):
        run_job(job, base_dir=tmp_path, run_dir=tmp_path / "empty", resume=True, show_progress=False)
