"""predict_file, what `shipyard predict` calls: one row out per row in, labels and probabilities (or values), the
default output beside the input, and the abstained column of a run that rejects out-of-scope rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shipyard.inference import default_output_for, predict_file
from shipyard.pipeline import RunResult, run_job
from tiny_runs import tiny_job, write_rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    root = tmp_path_factory.mktemp("inference")
    rows = write_rows(root / "rows.csv", n=60)
    plain = run_job(tiny_job(rows), base_dir=root, run_dir=root / "plain", show_progress=False)
    abstain = tiny_job(rows, evaluation={"abstain": {"threshold": 0.99, "label": "no"}})
    rejecting = run_job(abstain, base_dir=root, run_dir=root / "abstain", show_progress=False)
    return {"plain": plain, "abstain": rejecting}


def test_one_prediction_per_row_with_probabilities(runs: dict[str, RunResult], tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "new.csv", n=7, seed=5)
    out_file = tmp_path / "out.csv"
    assert predict_file(runs["plain"].run_dir, rows, out_file) == 7
    out = pd.read_csv(out_file)
    assert list(out.columns) == ["label", "p_no", "p_yes"] and len(out) == 7
    assert set(out["label"]) <= {"no", "yes"}
    assert ((out["p_no"] + out["p_yes"]) - 1).abs().max() < 1e-5
    assert "abstained" not in out.columns  # only a run that rejects out-of-scope rows has it


def test_the_target_column_in_the_input_is_ignored(runs: dict[str, RunResult], tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "new.csv", n=5, seed=6)
    without = tmp_path / "without.csv"
    pd.read_csv(rows).drop(columns=["label"]).to_csv(without, index=False)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    predict_file(runs["plain"].run_dir, rows, a)
    predict_file(runs["plain"].run_dir, without, b)
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))


def test_default_output_sits_beside_the_input() -> None:
    assert default_output_for(Path("data/new rows.jsonl")) == Path("data/new rows.predictions.csv")
    assert default_output_for(Path("x.csv")) == Path("x.predictions.csv")


def test_no_output_file_writes_nothing(runs: dict[str, RunResult], tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "new.csv", n=3, seed=7)
    assert predict_file(runs["plain"].run_dir, rows, None) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv"]


def test_the_abstained_column_marks_rejected_rows(runs: dict[str, RunResult], tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "new.csv", n=20, seed=8)
    out_file = tmp_path / "out.csv"
    predict_file(runs["abstain"].run_dir, rows, out_file)
    out = pd.read_csv(out_file)
    assert list(out.columns) == ["label", "abstained", "p_no", "p_yes"]
    assert out["abstained"].dtype == bool
    # one epoch on 36 rows is never 99% sure: every row falls back to the configured label
    assert out["abstained"].all() and (out["label"] == "no").all()
