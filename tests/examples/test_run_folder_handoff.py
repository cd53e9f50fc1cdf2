"""The run folder is the only hand-off (issue #13): after training, `optimize`, `evaluate`, `predict` and `explain`
work from another working directory with the data source gone.

Every example job is trained on a small slice of its real data (written to a temporary data folder that
SHIPYARD_DATA_DIR points at), for one epoch; the data folder is then moved away and the later commands run from a
different folder. The MNIST examples train on a slice of the real IDX files (300 training and 100 test images,
gzipped as the originals), which move away with the data folder; the digits example reads scikit-learn's bundled
digits, so after training that loader is made to fail: any later read of the source would show. Image runs are
then evaluated, optimised and sent an erasure request from their stored splits alone (they cannot be given a CSV
of rows, so predict / explain do not apply to them). Text examples fine-tune a two-layer BERT with MiniLM's
tokenizer instead of MiniLM itself (what each text example adds
is its source's format and read options, which the small encoder exercises the same way, in a tenth of the time).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from transformers import AutoTokenizer
from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.data.split_files import read_split
from shipyard.evaluation.saved import evaluate_run
from shipyard.pretrained import resolve_model_dir
from tiny_bert import save_tiny_bert

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()
TEXT_EXAMPLES = {"banking77", "chnsenticorp", "chnsenticorp_scratch", "financial_phrasebank", "sst2"}
PRETRAINED_TEXT = TEXT_EXAMPLES - {"chnsenticorp_scratch"}  # the rest take a transformer's `pretrained`
TEXT_AUTO_EXAMPLES = {"chnsenticorp_auto", "financial_phrasebank_auto", "sst2_auto"}  # explicit text candidates
# auto: its candidates run for a fixed (shortened) budget
SLOW_EXAMPLES = TEXT_EXAMPLES | TEXT_AUTO_EXAMPLES | {"adult_auto"}
IMAGE_EXAMPLES = {"digits_cnn", "mnist_cnn", "mnist_mlp"}


def _every_nth_line(src: Path, dst: Path, rows: int, header: bool) -> None:
    """A slice of a line-per-row file, byte for byte (its encoding, delimiter and quirks kept)."""
    lines = src.read_bytes().splitlines(keepends=True)
    head, body = (lines[:1], lines[1:]) if header else ([], lines)
    step = max(1, len(body) // rows)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"".join(head + body[::step][:rows]))


def _per_class(src: Path, dst: Path, target: str, classes: int, per_class: int) -> None:
    """A CSV slice with ``per_class`` rows of each of the first ``classes`` labels (the file is sorted by label)."""
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    kept = sorted(frame[target].unique())[:classes]
    frame = frame[frame[target].isin(kept)].groupby(target, group_keys=False).head(per_class)
    dst.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(dst, index=False)


def _idx_slice(src: Path, dst: Path, items: int) -> None:
    """The first ``items`` items of a gzipped IDX file (images or labels), with its header's count rewritten."""
    raw = gzip.decompress(src.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    per_item = 1
    for dim in dims[1:]:
        per_item *= dim
    header = raw[:4] + items.to_bytes(4, "big") + raw[8 : 4 + 4 * ndim]
    body = raw[4 + 4 * ndim : 4 + 4 * ndim + items * per_item]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(gzip.compress(header + body))


def _slice_data(name: str, shared: Path, data: Path) -> None:
    if name in ("mnist_cnn", "mnist_mlp"):
        for prefix, items in (("train", 300), ("t10k", 100)):
            for kind in ("images-idx3", "labels-idx1"):
                file = f"{prefix}-{kind}-ubyte.gz"
                _idx_slice(shared / "mnist" / file, data / "mnist" / file, items)
    elif name.startswith("adult"):
        for file in ("adult.data", "adult.test"):
            _every_nth_line(shared / "adult" / file, data / "adult" / file, 400, header=True)
    elif name.startswith("california"):
        file = Path("california_housing") / "cal_housing.data"
        _every_nth_line(shared / file, data / file, 300, header=False)
    elif name == "banking77":
        for file in ("train.csv", "test.csv"):
            _per_class(shared / name / file, data / name / file, "category", 4, 12)
    elif name.startswith("chnsenticorp"):
        src = shared / "chnsenticorp" / "ChnSentiCorp_htl_all.csv"
        _per_class(src, data / "chnsenticorp" / src.name, "label", 2, 40)
    elif name.startswith("financial_phrasebank"):
        file = Path("financial_phrasebank") / "Sentences_50Agree.txt"
        _every_nth_line(shared / file, data / file, 80, header=False)
    elif name.startswith("sst2"):
        for file in ("train.tsv", "dev.tsv", "test.tsv"):
            _every_nth_line(shared / "sst2" / file, data / "sst2" / file, 60, header=True)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer BERT (random weights) with MiniLM's tokenizer, saved as a local Hugging Face folder."""
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir("minilm")))
    folder = tmp_path_factory.mktemp("encoder") / "tiny-bert"
    return save_tiny_bert(folder, vocab_size=tokenizer.vocab_size, hidden_size=32, tokenizer=tokenizer)


def _quick_job(path: Path, job_dir: Path, encoder: Path | None = None) -> Path:
    """The example, one short epoch; its data files stay where SHIPYARD_DATA_DIR (or the job's folder) says."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    training = raw.setdefault("training", {})
    training.update(epochs=1, max_steps=4)
    training.pop("early_stopping", None)
    if path.stem == "digits_cnn":
        raw["data"]["source"] = {"format": "sklearn_digits", "limit": 400}
    if path.stem in IMAGE_EXAMPLES:
        raw["data"].pop("augmentation", None)
    if path.stem in TEXT_EXAMPLES:
        raw["data"]["text"] = {**raw["data"].get("text", {}), "max_length": 32}
        if encoder is not None and path.stem in PRETRAINED_TEXT:
            raw["model"]["pretrained"] = str(encoder)
    if raw["model"]["type"] == "auto":  # a short budget, and the single best model (what optimize/explain take)
        # 120 s: one candidate process takes 30 to 60 s on the shared 2-core machine (torch and LightGBM imports)
        raw["model"].update(time_budget="120s", prefer="speed")
        if path.stem in TEXT_AUTO_EXAMPLES:  # its first own-vocabulary candidate, a few steps (not the encoder)
            first = next(c for c in raw["model"]["candidates"] if c["type"] != "transformer")
            raw["model"]["candidates"] = [{**first, "training": {**first.get("training", {}), **training}}]
            raw["data"]["text"] = {**raw["data"].get("text", {}), "max_length": 32}
        else:
            raw["model"]["families"] = ["lightgbm"]
    if path.stem == "linear_regression":
        shutil.copy(EXAMPLES / "line.csv", job_dir / "line.csv")
    job = job_dir / path.name
    job.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return job


def _rows_file(run: Path, folder: Path) -> Path:
    """A few labelled rows the run kept (its stored split), as a CSV in the later command's folder."""
    splits = run / "splits"
    stored = next(
        splits / f"{n}.parquet" for n in ("test", "validation", "train") if (splits / f"{n}.parquet").is_file()
    )
    rows = folder / "rows.csv"
    header = json.loads((run / "model" / "shipyard.json").read_text())["read_options"]["header"]
    pd.read_parquet(stored).head(5).to_csv(rows, index=False, header=header)  # like the training file
    return rows


def _stored_rows(run: Path) -> int:
    splits = run / "splits"
    name = next(n for n in ("test", "validation", "train") if (splits / f"{n}.parquet").is_file())
    return len(pd.read_parquet(splits / f"{name}.parquet"))


def _ok(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"shipyard {' '.join(args)}:\n{result.output}"


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW_EXAMPLES else [])
        for p in sorted(EXAMPLES.glob("*.yaml"))
        # recommenders and retrieval have no predict / evaluate / explain / optimize; their run folders serve
        # (tests/serve/test_serve_recommend.py, tests/retrieval/)
        if not any(f"task: {t}" in p.read_text(encoding="utf-8") for t in ("recommendation", "retrieval"))
    ],
)
def test_later_commands_need_only_the_run_folder(
    example: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    data, jobs, first, later = (tmp_path / n for n in ("data", "jobs", "first", "later"))
    for folder in (jobs, first, later):
        folder.mkdir()
    _slice_data(example.stem, data_dir, data)
    encoder = request.getfixturevalue("tiny_encoder") if example.stem in TEXT_EXAMPLES else None
    job = _quick_job(example, jobs, encoder)
    monkeypatch.setenv("SHIPYARD_DATA_DIR", str(data))
    monkeypatch.chdir(first)
    _ok(["train", str(Path("..") / "jobs" / job.name), "--run-dir", "runs/r", "--quiet"])
    run = first / "runs" / "r"

    # the sources are gone: the data folder moved, the job's own files too, SHIPYARD_DATA_DIR points nowhere
    if data.exists():
        data.rename(tmp_path / "moved")
    shutil.rmtree(jobs)
    monkeypatch.setenv("SHIPYARD_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.chdir(later)
    run_arg = str(Path("..") / "first" / "runs" / "r")  # relative to the later command's folder

    if example.stem == "digits_cnn":  # its source is bundled with scikit-learn: reading it now fails the test
        monkeypatch.setattr("sklearn.datasets.load_digits", _source_read)

    _ok(["optimize", run_arg, "--methods", "onnx", "--threads", "1"])
    if (run / "splits" / "test.parquet").is_file() or example.stem in IMAGE_EXAMPLES:
        _ok(["evaluate", run_arg])
    else:  # a job that keeps no test rows (the four-point line): said so, never a read of the moved source
        result = runner.invoke(app, ["evaluate", run_arg])
        assert result.exit_code == 2 and "no test rows" in result.output, result.output
    if example.stem in IMAGE_EXAMPLES:
        _image_run_from_its_splits(run, run_arg)
        return  # image rows cannot be written to a CSV / JSONL file: predict and explain take tabular or text rows
    rows = _rows_file(run, later)
    _ok(["evaluate", run_arg, "--data", rows.name])
    _ok(["predict", run_arg, "--input", rows.name, "--output", "out.csv"])
    assert len(pd.read_csv(later / "out.csv")) == min(5, _stored_rows(run))
    _ok(["explain", run_arg, "--input", rows.name, "--n", "2"])


def _source_read(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a later command read the run's data source again")


def _image_run_from_its_splits(run: Path, run_arg: str) -> None:
    """The stored image splits give the training-time test metrics again, and an erasure request (one test image,
    by its keys) rewrites them and regenerates metrics and report from the remaining rows."""
    assert sorted(p.name for p in (run / "splits").iterdir()) == [
        "test.safetensors",
        "train.safetensors",
        "validation.safetensors",
    ]
    trained = json.loads((run / "metrics.json").read_text())["test"]
    assert evaluate_run(run)["accuracy"] == pytest.approx(trained["accuracy"])  # the same rows as at training
    test = read_split(run / "splits" / "test.safetensors")
    key = test.iloc[0]
    where = f"source == '{key['source']}' and row == {key['row']}"
    _ok(["data", "forget", run_arg, "--where", where])
    assert len(read_split(run / "splits" / "test.safetensors")) == len(test) - 1
    assert json.loads((run / "data_summary.json").read_text())["rows"]["test"] == len(test) - 1
    assert "Erasure" in (run / "report.html").read_text(encoding="utf-8")
    _ok(["evaluate", run_arg])
