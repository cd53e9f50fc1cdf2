"""Data-parallel training under torchrun (gloo on CPU): the same model as one process, and exact resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from shipyard.training.distributed import DistContext

sys.path.insert(0, str(Path(__file__).parent))
from _train_script import kill_mid_second_epoch

SCRIPT = Path(__file__).parent / "_train_script.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}

# 307 training rows in batches of 10 end with a batch of 7, split 3 / 2 / 2 over 3 ranks: the test covers the
# weighting of uneven shards, not only the even case
JOB = """task: classification
data:
  source: {{path: "{d}/train.csv"}}
  validation_source: {{path: "{d}/valid.csv"}}
  test_source: {{path: "{d}/test.csv"}}
  target: y
  split: {{method: random, validation: 0.0, test: 0.0}}
model: {{type: mlp, hidden: [16], dropout: 0.0, batch_norm: false}}
training:
  batch_size: 10
  gradient_accumulation: 2
  epochs: 3
  learning_rate: 0.01
  checkpoint_every_steps: 7
  early_stopping: {{metric: accuracy, patience: 3}}
  seed: 0
  num_threads: 1
"""


def torchrun(nproc: int, *args: str, wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone", *args]
    if not wait:
        return subprocess.Popen(
            cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)


def write_data(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, n in (("train", 307), ("valid", 60), ("test", 60)):
        x = rng.normal(size=(n, 4))
        frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
        frame["y"] = np.where(x[:, 0] + x[:, 1] * x[:, 2] > 0, "yes", "no")
        frame.to_csv(folder / f"{name}.csv", index=False)
    job = folder / "job.yaml"
    job.write_text(JOB.format(d=folder))
    return job


def train_both(job: Path, nproc: int, runs: Path) -> tuple[Path, Path, str]:
    """The job trained by ``nproc`` torchrun processes and by one process; their folders and torchrun's stdout."""
    ddp, single = runs / "ddp", runs / "single"
    done = torchrun(nproc, "-m", "shipyard.cli", "train", str(job), "--run-dir", str(ddp), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, "-m", "shipyard.cli", "train", str(job), "--run-dir", str(single), "--quiet"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    # the gradient of each global batch is the same, so the weights are, up to the order of float sums
    a, b = load_file(str(ddp / "model" / "model.safetensors")), load_file(str(single / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)
    return ddp, single, done.stdout


def test_shards_cover_every_row_once() -> None:
    batch = torch.arange(11)
    shards = [DistContext(rank=r, world_size=3).shard(batch) for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == list(range(11))
    assert [len(s) for s in shards] == [4, 4, 3]
    assert len(DistContext(rank=2, world_size=3).shard(torch.arange(2))) == 0  # handled by the engine


def test_last_batch_keeps_two_rows_per_rank() -> None:
    from shipyard.training.batching import epoch_batches

    assert [len(b) for b in epoch_batches(25, 10, seed=0, epoch=0)] == [10, 10, 5]
    assert [len(b) for b in epoch_batches(25, 10, seed=0, epoch=0, min_rows=6)] == [10, 15]  # 3 ranks
    assert [len(b) for b in epoch_batches(21, 10, seed=0, epoch=0)] == [10, 11]


def test_three_processes_train_the_model_one_process_trains(tmp_path: Path) -> None:
    ddp, single, stdout = train_both(write_data(tmp_path), 3, tmp_path / "runs")
    assert stdout.count("test: accuracy=") == 1  # rank 0 reports, the others stay quiet
    m_ddp, m_one = (json.loads((d / "metrics.json").read_text()) for d in (ddp, single))
    assert m_ddp["test"]["accuracy"] == m_one["test"]["accuracy"] > 0.7
    assert m_ddp["training"]["steps"] == m_one["training"]["steps"] == 3 * 16  # 31 batches -> 16 groups of 2
    for name in ("config.yaml", "report.html", "train_log.jsonl", "checkpoints/best.safetensors"):
        assert (ddp / name).is_file(), name
    epochs = [json.loads(line) for line in (ddp / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs if e["event"] == "epoch"] == [1, 2, 3]  # one writer, no duplicate lines
    with sqlite3.connect(tmp_path / "runs" / "shipyard.db") as db:
        rows = db.execute("SELECT run_id, status FROM runs").fetchall()
    assert sorted(rows) == [("ddp", "finished"), ("single", "finished")]


def test_torchrun_kill_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    # 607 rows -> 485 training rows: each epoch ends with a batch of 5, split 3 / 2 (uneven shards)
    rows = "607"
    full = tmp_path / "full"
    done = torchrun(2, str(SCRIPT), str(full), "fresh", "0", rows)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = torchrun(2, str(SCRIPT), str(killed), "fresh", "0.02", rows, wait=False)
    # torchrun and both ranks at once
    kill_mid_second_epoch(killed, lambda: (os.killpg(proc.pid, signal.SIGKILL), proc.wait()))
    assert not (killed / "final.safetensors").exists()
    resumed = torchrun(2, str(SCRIPT), str(killed), "resume", "0", rows)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = load_file(str(full / "final.safetensors")), load_file(str(killed / "final.safetensors"))
    for key in a:  # dropout draws per rank are restored per rank
        assert torch.equal(a[key], b[key]), key


def test_soup_under_torchrun_matches_one_process(tmp_path: Path) -> None:
    job = write_data(tmp_path)
    text = job.read_text().replace("epochs: 3", "epochs: 1") + "  soup: {ingredients: 2}\n"
    job.write_text(text)
    ddp, _, _ = train_both(job, 2, tmp_path / "runs")
    assert sorted(p.name for p in (ddp / "soup").iterdir()) == ["ingredient-1", "ingredient-2"]


def test_differential_privacy_under_torchrun_is_refused_before_any_file(tmp_path: Path) -> None:
    job = write_data(tmp_path)
    text = job.read_text().replace("gradient_accumulation: 2", "gradient_accumulation: 1")
    job.write_text(text + "privacy: {differential_privacy: {target_epsilon: 8.0}}\n")
    done = torchrun(2, "-m", "shipyard.cli", "train", str(job), "--run-dir", str(tmp_path / "runs" / "dp"), "--quiet")
    assert done.returncode != 0
    assert "differential privacy is single-process only" in done.stdout + done.stderr
    assert not (tmp_path / "runs" / "dp").exists()


def test_a_second_job_in_one_torchrun_launch_is_refused(tmp_path: Path) -> None:
    job = write_data(tmp_path)
    job.write_text(job.read_text().replace("epochs: 3", "epochs: 1"))
    script = tmp_path / "two_jobs.py"
    script.write_text(
        "import sys\n"
        "import shipyard\n"
        "from shipyard.errors import ShipyardError\n"
        "job = shipyard.Job.from_yaml(sys.argv[1])\n"
        "shipyard.run(job, run_dir=sys.argv[2] + '/first')\n"
        "try:\n"
        "    shipyard.run(job, run_dir=sys.argv[2] + '/second')\n"
        "except ShipyardError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = torchrun(2, str(script), str(job), str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("refused:") == 2 and "one job per torchrun launch" in done.stdout
    assert (tmp_path / "runs" / "first" / "metrics.json").is_file()
    assert not (tmp_path / "runs" / "second").exists()
