"""`shipyard tune`: trials are runs, the study is shared by two worker processes, the best job is written out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import yaml

JOB = """
name: tune-digits
task: classification
data:
  source: {format: sklearn_digits}
  split: {validation: 0.2, test: 0.2}
model: {type: mlp, hidden: [32]}
training: {epochs: 2, batch_size: 64, seed: 0, num_threads: 1}
search:
  params:
    training.learning_rate: {low: 0.0005, high: 0.05, log: true}
    model.hidden: {choices: [[16], [32, 16]]}
"""


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = [sys.executable, "-m", "shipyard.cli", "tune", str(tmp_path / "job.yaml"), "--trials", "1",
           "--storage", storage, "--study", "shared"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 2  # both workers' trials, numbered by the shared storage
    runs = {t.user_attrs.get("run_dir") for t in study.trials}
    assert len(runs) == 2 and all(Path(r, "metrics.json").is_file() for r in runs if r)
    folder = tmp_path / "runs" / "shared"
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert "search" not in best and best["model"]["hidden"] in ([16], [32, 16])
    assert "Parameter importance" in (folder / "tune_report.html").read_text()


def test_default_storage_is_the_run_store_and_pruning_reads_epochs(tmp_path: Path) -> None:
    from shipyard.tune import tune

    (tmp_path / "job.yaml").write_text(JOB.replace("epochs: 2", "epochs: 3"))
    summary = tune(tmp_path / "job.yaml", trials=3)
    db = tmp_path / "runs" / "tune-digits" / "shipyard.db"
    study = optuna.load_study(study_name="tune-digits", storage=f"sqlite:///{db}")
    assert summary["trials"] == 3 == len(study.trials)
    reported = [t.intermediate_values for t in study.trials]
    assert all(len(v) >= 1 for v in reported)  # every epoch's validation accuracy reached the pruner
    from shipyard.store.runs import RunStore

    assert len(RunStore.for_root(db.parent).list_runs()) == 3  # every trial is a run in the same store
