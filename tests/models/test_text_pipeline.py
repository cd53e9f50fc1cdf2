"""A small text fine-tune end to end through the command line: train, SIGKILL mid-epoch, resume (bit-identical
to an uninterrupted run), predict, evaluate and the report's text section."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

JOB = """task: classification
data:
  source: {{path: "{sst2}/train.tsv", format: tsv, limit: 400}}
  test_source: {{path: "{sst2}/test.tsv", format: tsv, limit: 100}}
  target: label
  features: [{{name: sentence, type: text}}]
  split: {{method: stratified, validation: 0.1, test: 0.0}}
  text: {{max_length: 48}}
model: {{type: transformer, pretrained: minilm, mode: full}}
training: {{batch_size: 16, epochs: 1, learning_rate: 0.0001, checkpoint_every_steps: 3, seed: 1, num_threads: 1}}
"""


def shipyard(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def job_file(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("text") / "sst2_small.yaml"
    path.write_text(JOB.format(sst2=data_dir / "sst2"))
    return path


def test_text_finetune_kill_resume_predict_report(job_file: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    done = shipyard("train", str(job_file), "--run-dir", str(full), "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((full / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["test"]["n"] == 100

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipyard.cli", "train", str(job_file), "--run-dir", str(killed), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pointer = killed / "checkpoints" / "latest.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if pointer.is_file() and json.loads(pointer.read_text())["state"]["group"] >= 3:
                break
            time.sleep(0.02)
        else:
            pytest.fail("no mid-epoch checkpoint appeared")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (killed / "model" / "shipyard.json").exists(), "the run finished before it could be killed"
    resumed = shipyard("train", str(job_file), "--resume", str(killed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert (full / "model" / "model.safetensors").read_bytes() == (killed / "model" / "model.safetensors").read_bytes()

    rows = tmp_path / "rows.csv"
    rows.write_text('sentence\n"a gorgeous , witty , seductive movie ."\nthe plot is nothing but boilerplate .\n')
    out = tmp_path / "pred.jsonl"
    pred = shipyard("predict", str(full), "--input", str(rows), "--output", str(out))
    assert pred.returncode == 0, pred.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 2 and all(x["label"] in ("0", "1") for x in lines)

    again = shipyard("evaluate", str(full))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["accuracy"] == metrics["test"]["accuracy"]

    report = (full / "report.html").read_text()
    assert "most confident mistakes" in report and "Length distribution" in report
    assert (full / "model" / "text_encoder").is_dir()  # the tokenizer travels with the model


def test_empty_text_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text('sentence,label\ngood film,1\n"",0\nbad film,0\nfine,1\n')
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "task: classification\ndata:\n  source: {path: t.csv}\n  features: [{name: sentence, type: text}]\n"
        "  split: {method: random, validation: 0.0, test: 0.0}\nmodel: {type: transformer}\n"
        "training: {epochs: 1}\n"
    )
    res = shipyard("train", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet")
    assert res.returncode == 2, res.stderr
    assert (
        res.stderr.startswith("error:") and "sentence" in res.stderr and "row 2" in res.stderr and "t.csv" in res.stderr
    )
    assert not (tmp_path / "run").exists()
