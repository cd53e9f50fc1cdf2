"""Run-folder hardening through the CLI (issue #12): file modes of a trained run, a full disk reported as exit 2
with nothing servable left, unique run ids, optimize's leftovers and relative data paths."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from shipyard import io
from shipyard.artifact import Artifact
from shipyard.cli import app
from shipyard.config.schema import Job
from shipyard.errors import ShipyardError
from shipyard.pipeline import new_run_id
from shipyard.store.runs import RunStore

runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    warnings.simplefilter("ignore")
    try:
        yield
    finally:
        os.umask(old)


def write_job(folder: Path, **extra: object) -> Path:
    """A tiny classification job whose data path is relative to the job file's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["id,x1,x2,label"]
    for i in range(80):
        a, b = rng.normal(size=2)
        rows.append(f"{i},{a:.3f},{b:.3f},{'yes' if a + b > 0 else 'no'}")
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    job = {
        "name": "tiny",
        "task": "classification",
        "data": {
            "source": {"path": "data.csv"},
            "target": "label",
            "id_column": "id",
            "split": {"validation": 0.2, "test": 0.2},
        },
        "model": {"type": "mlp", "hidden": [8]},
        "training": {"epochs": 2, "batch_size": 16, "seed": 0},
        **extra,
    }
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def train(job: Path, run_dir: Path) -> object:
    return runner.invoke(app, ["train", str(job), "--run-dir", str(run_dir), "--quiet"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    old = os.umask(0o022)
    try:
        root = tmp_path_factory.mktemp("trained")
        res = train(write_job(root / "jobs"), root / "runs" / "r1")
        assert res.exit_code == 0, res.output
    finally:
        os.umask(old)
    return root / "runs" / "r1"


# ---- item 6 ------------------------------------------------------------------------------------------------------


def test_run_folder_modes_follow_one_policy(trained: Path) -> None:
    readable = [trained / "config.yaml", trained / "metrics.json", trained / "report.html", trained / "model_card.md"]
    readable += [p for p in (trained / "model").iterdir() if p.is_file()]
    for path in readable:
        assert mode(path) == 0o644, (path, oct(mode(path)))  # another uid (a server container) may read them
    splits = list((trained / "splits").glob("*.parquet"))
    assert len(splits) == 3
    for path in [*splits, trained.parent / "shipyard.db"]:
        assert mode(path) == 0o600, (path, oct(mode(path)))  # raw rows with ids, key hashes, configs


# ---- item 10 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("victim", ["report.html", "model.safetensors"])
def test_a_full_disk_is_exit_2_and_leaves_nothing_servable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == victim:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)
    run_dir = tmp_path / "runs" / "full"
    res = train(write_job(tmp_path / "jobs"), run_dir)
    assert res.exit_code == 2, res.output
    error = res.output.strip().splitlines()[-1]  # log lines may come first
    assert error.startswith("error:") and "no space left on the device" in error and victim in error
    assert "internal error" not in res.output
    record = RunStore.for_root(run_dir.parent).get("full")
    assert record.status == "failed" and "no space left" in (record.error or "")
    assert not (run_dir / "report.html").exists() and not (run_dir / "model_card.md").exists()
    monkeypatch.undo()
    for path in (run_dir, run_dir / "model"):  # whatever model/ holds, no loader takes it
        with pytest.raises(ShipyardError, match="did not finish"):
            Artifact.load(path)
    served = runner.invoke(app, ["predict", str(run_dir), "--input", str(tmp_path / "jobs" / "data.csv")])
    assert served.exit_code == 2 and "did not finish" in served.output


def test_a_finished_run_has_no_incomplete_marker(trained: Path) -> None:
    assert not (trained / ".incomplete").exists()
    assert Artifact.load(trained).task == "classification"


# ---- item 11 -----------------------------------------------------------------------------------------------------


def test_identical_jobs_in_the_same_second_get_different_ids(tmp_path: Path) -> None:
    job = Job.from_yaml(write_job(tmp_path))
    ids = {new_run_id(job) for _ in range(20)}
    assert len(ids) == 20


def test_a_second_job_cannot_write_into_a_claimed_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shipyard.pipeline as pipeline

    run_dir = tmp_path / "runs" / "claimed"
    real = pipeline.prepare_data

    def slow_prepare(*args: object, **kwargs: object) -> object:
        out = real(*args, **kwargs)  # meanwhile another job took the same (empty) folder
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ".incomplete").write_text("the other job")
        return out

    monkeypatch.setattr(pipeline, "prepare_data", slow_prepare)
    res = train(write_job(tmp_path / "jobs"), run_dir)
    assert res.exit_code == 2 and "another job" in res.output
    assert sorted(p.name for p in run_dir.iterdir()) == [".incomplete"]  # nothing written into its folder


def test_optimize_removes_what_a_killed_optimize_left(trained: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    out = run / "optimized"
    out.mkdir(exist_ok=True)
    dead = out / ".work-999999999-int8-abc"  # a pid that cannot exist
    legacy = out / ".work-onnx-xyz"  # named before scratch folders carried a pid
    aside = out / ".old-onnx-123"
    live = out / f".work-{os.getpid()}-prune-abc"  # a concurrent optimisation's (this process is alive)
    for folder in (dead, legacy, aside, live):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x" * 10)
    res = runner.invoke(app, ["optimize", str(run), "--methods", "onnx", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert not dead.exists() and not legacy.exists() and not aside.exists()
    assert live.exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [live.name]


# ---- item 15 -----------------------------------------------------------------------------------------------------


def test_optimize_from_another_directory_with_the_source_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = write_job(tmp_path / "jobs")
    monkeypatch.chdir(tmp_path)  # the repository root, say: not the job's folder
    res = train(job.relative_to(tmp_path), Path("runs") / "rel")
    assert res.exit_code == 0, res.output
    (tmp_path / "jobs" / "data.csv").rename(tmp_path / "elsewhere.csv")  # the source is gone
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    res = runner.invoke(app, ["optimize", str(tmp_path / "runs" / "rel"), "--methods", "onnx", "--threads", "1"])
    assert res.exit_code == 0, res.output
    table = json.loads((tmp_path / "runs" / "rel" / "optimized" / "optimize.json").read_text())
    assert table["eval_rows"] == 16 and {r["method"] for r in table["rows"]} == {"original", "onnx"}


def test_a_run_without_stored_splits_is_refused_never_read_from_its_sources(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.io import recorded_base_dir
    from shipyard.optimize.context import load_run

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.rmtree(run / "splits")  # a damaged folder (or an image run from before image runs kept their splits)
    monkeypatch.chdir(tmp_path)
    assert recorded_base_dir(run) == trained.parent.parent / "jobs"  # still recorded: `train --resume` uses it
    with pytest.raises(ShipyardError) as err:
        load_run(run)
    assert "stored training split" in err.value.message and err.value.where == str(run / "splits")
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 2 and "no stored splits" in res.output, res.output
