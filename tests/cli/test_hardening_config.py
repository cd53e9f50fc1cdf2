"""Issue #12 (config safety, resume, JSON input) through the command line: an alias bomb exits 2 in well under a
second, `--resume` refuses a changed config naming each difference, and JSON / per-class text folders train."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def shipyard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
)


@pytest.mark.parametrize("command", ["validate", "train"])
def test_alias_bomb_exits_2_in_milliseconds(tmp_path: Path, command: str) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text("task: classification\ndata: {source: {format: sklearn_digits}}\nmodel: {type: mlp}\n" + BOMB)
    started = time.perf_counter()
    # before the fix this ran past any timeout and grew to gigabytes; the subprocess timeout guards the suite
    result = shipyard(command, str(config), timeout=30)
    assert result.returncode == 2, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert "alias" in result.stderr and "Traceback" not in result.stderr
    assert time.perf_counter() - started < 20  # mostly interpreter start-up; the check itself takes milliseconds
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------------ resume

ROWS = "a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}\n" for i in range(40))


def tabular_job(*, lr: float = 0.01, epochs: int = 2, seed: int = 0, test: float = 0.2, hidden: str = "[4]") -> str:
    return f"""task: classification
data:
  source: {{path: rows.csv}}
  split: {{method: random, validation: 0.2, test: {test}}}
model: {{type: mlp, hidden: {hidden}}}
training: {{epochs: {epochs}, learning_rate: {lr}, seed: {seed}, batch_size: 8, device: cpu}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run of the job in jobs/ (trained once; each test resumes a copy)."""
    root = tmp_path_factory.mktemp("resume")
    jobs = root / "jobs"
    jobs.mkdir()
    (jobs / "rows.csv").write_text(ROWS)
    (jobs / "job.yaml").write_text(tabular_job())
    result = runner.invoke(app, ["train", str(jobs / "job.yaml"), "--run-dir", str(root / "runs" / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (root / "runs" / "run" / "checkpoints").is_dir()
    return root


@pytest.fixture
def finished_run(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The job folder (config + data) and a fresh copy of its finished run; the cwd is elsewhere."""
    run = tmp_path / "runs" / "run"
    shutil.copytree(trained / "runs" / "run", run)
    monkeypatch.chdir(tmp_path)
    return trained / "jobs", run


def test_resume_with_a_changed_config_is_refused_naming_each_difference(finished_run: tuple[Path, Path]) -> None:
    jobs, run = finished_run
    metrics_before = (run / "metrics.json").read_bytes()
    (jobs / "changed.yaml").write_text(tabular_job(lr=0.05, epochs=3, seed=1, test=0.3))
    result = runner.invoke(app, ["train", str(jobs / "changed.yaml"), "--resume", str(run), "--quiet"])
    assert result.exit_code == 2, result.output
    errors = error_lines(result.output)
    assert len(errors) == 1, result.output
    for difference in (
        "training.learning_rate: 0.01 -> 0.05",
        "training.epochs: 2 -> 3",
        "training.seed: 0 -> 1",
        "data.split.test: 0.2 -> 0.3",
    ):
        assert difference in errors[0], errors[0]
    assert (run / "metrics.json").read_bytes() == metrics_before  # the run is left as it was


def test_resume_with_another_architecture_is_refused_not_a_size_mismatch(finished_run: tuple[Path, Path]) -> None:
    jobs, run = finished_run
    (jobs / "wider.yaml").write_text(tabular_job(hidden="[8]"))
    result = runner.invoke(app, ["train", str(jobs / "wider.yaml"), "--resume", str(run), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "model.hidden: [4] -> [8]" in result.output
    assert "internal error" not in result.output and "size mismatch" not in result.output


def test_resume_with_the_same_config_continues(finished_run: tuple[Path, Path]) -> None:
    jobs, run = finished_run
    metrics = json.loads((run / "metrics.json").read_text())
    result = runner.invoke(app, ["train", str(jobs / "job.yaml"), "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["test"] == metrics["test"]


def test_resume_without_a_config_uses_the_runs_own(finished_run: tuple[Path, Path]) -> None:
    _, run = finished_run
    metrics = json.loads((run / "metrics.json").read_text())
    # the cwd is not the job's folder, yet the relative data path still resolves
    result = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["test"] == metrics["test"]


def test_train_without_config_or_resume_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "config" in result.output.lower()


# ------------------------------------------------------------------------------------------- JSON input


def test_json_source_validates_and_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rows = [{"a": i % 7, "b": (i * 3) % 5, "label": "yes" if i % 2 else "no"} for i in range(40)]
    (tmp_path / "rows.json").write_text(json.dumps({"train": rows}))
    config = tmp_path / "job.yaml"
    config.write_text(tabular_job().replace("{path: rows.csv}", "{path: rows.json, records_path: train}"))
    assert runner.invoke(app, ["validate", str(config)]).exit_code == 0
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["test"]["n"] == 8  # 20% of the 40 records


def test_validate_lists_the_formats_that_exist(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(tabular_job().replace("{path: rows.csv}", "{path: rows.xml, format: xml}"))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "data.source.format" in result.output
    for fmt in ("'csv'", "'jsonl'", "'json'", "'text_folder'"):
        assert fmt in result.output, result.output


def test_init_infers_a_text_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "pos.txt").write_text("".join(f"good film number {i}\n" for i in range(30)))
    (folder / "neg.txt").write_text("".join(f"bad film number {i}\n" for i in range(30)))
    result = runner.invoke(app, ["init", "--data", str(folder), "--target", "label"])
    assert result.exit_code == 0, result.output
    assert "format: text_folder" in result.output
