"""The saved model folder: save and load give the same predictions; pickles, unfinished runs and foreign folders
are refused; the training data's read options come back from shipyard.json."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.artifact import META, Artifact, looks_like_pickle, save_torch_artifact
from shipyard.errors import ShipyardError
from shipyard.io import INCOMPLETE
from shipyard.pipeline import RunResult, run_job
from tiny_runs import tiny_job, write_rows


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    root = tmp_path_factory.mktemp("artifact")
    job = tiny_job(write_rows(root / "rows.csv", n=60))
    return run_job(job, base_dir=root, run_dir=root / "run", show_progress=False)


def _copy(run: RunResult, dst: Path) -> Path:
    shutil.copytree(run.run_dir, dst)
    return dst


def test_save_and_load_round_trip(run: RunResult, tmp_path: Path) -> None:
    art = Artifact.load(run.run_dir)  # a run folder: its model/
    assert art.path == run.run_dir / "model" and art.backend == "torch" and art.task == "classification"
    assert art.labels == ["no", "yes"] and [f["name"] for f in art.features] == ["a", "b", "c"]
    frame = pd.read_parquet(run.run_dir / "splits" / "test.parquet")
    before = art.predict_frame(frame)["probabilities"]
    saved = tmp_path / "again"
    save_torch_artifact(
        saved,
        model=art.model,
        preprocessor=art.preprocessor,
        task=art.task,
        model_type=art.meta["model"]["type"],
        model_params=art.meta["model"]["params"],
        input_spec=art.preprocessor.input_spec(art.task),
        features=art.features,
        target=art.meta["target"],
        labels=art.labels,
        target_scale=None,
        extra={"read_options": art.read_options},
    )
    again = Artifact.load(saved)
    np.testing.assert_allclose(again.predict_frame(frame)["probabilities"], before, rtol=1e-6)
    assert again.read_options == art.read_options


def test_a_pickle_in_the_folder_is_refused(run: RunResult, tmp_path: Path) -> None:
    folder = _copy(run, tmp_path / "run") / "model"
    hidden = folder / "notes.txt"  # a pickle under an innocent name is found by its content
    hidden.write_bytes(pickle.dumps({"a": 1}))
    assert looks_like_pickle(hidden)
    with pytest.raises(ShipyardError, match="pickle"):
        Artifact.load(folder)
    hidden.unlink()
    (folder / "weights.pt").write_bytes(b"whatever")  # and a pickle-capable name whatever its content
    with pytest.raises(ShipyardError, match="pickle"):
        Artifact.load(folder)


def test_a_safetensors_file_is_not_taken_for_a_pickle(run: RunResult) -> None:
    assert not looks_like_pickle(run.run_dir / "model" / "model.safetensors")


def test_an_unfinished_run_is_refused_unless_the_pipeline_asks(run: RunResult, tmp_path: Path) -> None:
    folder = _copy(run, tmp_path / "run")
    (folder / INCOMPLETE).touch()
    for path in (folder, folder / "model"):
        with pytest.raises(ShipyardError, match="did not finish"):
            Artifact.load(path)
    assert Artifact.load(folder, allow_incomplete=True).backend == "torch"


def test_a_folder_without_shipyard_json_or_of_another_version_is_refused(run: RunResult, tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match="not a model folder"):
        Artifact.load(tmp_path)
    folder = _copy(run, tmp_path / "run") / "model"
    meta = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ShipyardError, match="format_version"):
        Artifact.load(folder)


def test_read_options_come_from_shipyard_json_else_the_runs_config(run: RunResult, tmp_path: Path) -> None:
    art = Artifact.load(run.run_dir)
    assert art.read_options == json.loads((run.run_dir / "model" / META).read_text())["read_options"]
    folder = _copy(run, tmp_path / "run") / "model"
    meta = json.loads((folder / META).read_text())
    meta.pop("read_options")  # an artifact from before they were recorded
    (folder / META).write_text(json.dumps(meta))
    assert Artifact.load(folder).read_options["path"] == str(run.run_dir.parent / "rows.csv")
