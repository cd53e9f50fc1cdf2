"""Every bad-input case from the foundation issue: exit code 2, one `error:` line naming the place, no traceback,
and no run folder left behind."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli import app

runner = CliRunner()

GOOD_CSV = "a,b,label\n1,x,yes\n2,y,no\n3,x,yes\n4,y,no\n5,x,yes\n6,y,no\n7,x,yes\n8,y,no\n9,x,yes\n10,y,no\n"


def job_yaml(source: str, *, target: str = "label", extra: str = "", model: str = "mlp") -> str:
    return f"""task: classification
data:
  source:
{source}
  target: {target}
  split: {{method: random, validation: 0.2, test: 0.2}}
{extra}model:
  type: {model}
  hidden: [4]
training:
  epochs: 1
output:
  runs_root: runs
"""


def run_train(tmp_path: Path, config_text: str, name: str = "job.yaml") -> tuple[int, str]:
    cfg = tmp_path / name
    cfg.write_text(config_text, encoding="utf-8")
    result = runner.invoke(app, ["train", str(cfg), "--quiet", "--run-dir", str(tmp_path / "run")])
    return result.exit_code, result.output


def assert_clean_error(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, f"{needle!r} not in {output!r}"


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _no_run(tmp_path: Path) -> None:
    assert not (tmp_path / "run").exists()


def test_malformed_yaml(tmp_path: Path) -> None:
    code, out = run_train(tmp_path, "task: classification\ndata: [unclosed\n")
    assert_clean_error(code, out, "job.yaml:", "malformed YAML")
    _no_run(tmp_path)


def test_misspelt_key_suggests(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(GOOD_CSV)
    text = job_yaml("    path: d.csv").replace("  epochs: 1", "  epochs: 1\n  learning_rat: 0.1")
    code, out = run_train(tmp_path, text)
    assert_clean_error(code, out, "training.learning_rat", "did you mean `learning_rate`")
    assert "job.yaml:12" in out
    _no_run(tmp_path)


def test_wrong_type(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(GOOD_CSV)
    code, out = run_train(tmp_path, job_yaml("    path: d.csv").replace("epochs: 1", "epochs: many"))
    assert_clean_error(code, out, "training.epochs", "integer", "'many'")
    _no_run(tmp_path)


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        job_yaml("    path: d.csv")
        .replace("epochs: 1", "epochs: 0\n  batch_sise: 3")
        .replace("hidden: [4]", "hiden: [4]")
    )
    result = runner.invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 2
    assert "did you mean `batch_size`" in result.output
    assert "did you mean `hidden`" in result.output
    assert "training.epochs" in result.output
    assert "3 problem(s)" in result.output


def test_missing_data_file(tmp_path: Path) -> None:
    code, out = run_train(tmp_path, job_yaml("    path: nowhere.csv"))
    assert_clean_error(code, out, "nowhere.csv")
    _no_run(tmp_path)


def test_empty_data_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    code, out = run_train(tmp_path, job_yaml("    path: empty.csv"))
    assert_clean_error(code, out, "empty.csv", "empty")
    _no_run(tmp_path)


def test_ragged_csv(tmp_path: Path) -> None:
    (tmp_path / "ragged.csv").write_text("a,b,label\n1,x,yes\n2,y,no,extra\n3,x,yes\n")
    code, out = run_train(tmp_path, job_yaml("    path: ragged.csv"))
    assert_clean_error(code, out, "ragged.csv")
    assert "row" in out.lower() or "line" in out.lower()
    _no_run(tmp_path)


def test_missing_target(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(GOOD_CSV)
    code, out = run_train(tmp_path, job_yaml("    path: d.csv", target="lable"))
    assert_clean_error(code, out, "lable")
    _no_run(tmp_path)


def test_non_numeric_in_numeric_column(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(GOOD_CSV.replace("5,x,yes", "five,x,yes"))
    extra = "  features: [{name: a, type: numeric}, b]\n"
    code, out = run_train(tmp_path, job_yaml("    path: d.csv", extra=extra))
    assert_clean_error(code, out, "'a'" if "'a'" in out else "a", "five")
    _no_run(tmp_path)


def test_label_only_in_test_split(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(GOOD_CSV)
    (tmp_path / "test.csv").write_text("a,b,label\n1,x,yes\n2,y,maybe\n")
    extra = "  test_source: {path: test.csv}\n"
    code, out = run_train(tmp_path, job_yaml("    path: train.csv", extra=extra).replace("test: 0.2", "test: 0.0"))
    assert_clean_error(code, out, "maybe")
    _no_run(tmp_path)


def test_non_utf8_without_encoding(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes(GOOD_CSV.replace("x,yes", "caf\xe9,yes", 1).encode("latin-1"))
    code, out = run_train(tmp_path, job_yaml("    path: latin.csv"))
    assert_clean_error(code, out, "latin.csv", "encoding")
    _no_run(tmp_path)


def test_corrupt_image(tmp_path: Path) -> None:
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), color=i * 20).save(tmp_path / "imgs" / label / f"{i}.png")
    good = (tmp_path / "imgs" / "dog" / "0.png").read_bytes()
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(good[: len(good) // 2])
    code, out = run_train(tmp_path, job_yaml("    path: imgs\n    format: images"))
    assert_clean_error(code, out, "broken.png")
    _no_run(tmp_path)


def test_idx_wrong_magic(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "imgs.gz", "wb") as fh:
        fh.write(struct.pack(">IIII", 1234, 2, 2, 2) + bytes(8))
    with gzip.open(tmp_path / "labels.gz", "wb") as fh:
        fh.write(struct.pack(">II", 2049, 2) + bytes(2))
    code, out = run_train(tmp_path, job_yaml("    format: idx\n    images: imgs.gz\n    labels: labels.gz"))
    assert_clean_error(code, out, "imgs.gz", "magic")
    _no_run(tmp_path)


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "job.yaml"
    cfg.write_text(job_yaml("    path: nowhere.csv"))
    result = runner.invoke(app, ["--debug", "train", str(cfg), "--quiet"])
    assert result.exit_code == 2
