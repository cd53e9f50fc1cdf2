"""An image run keeps its splits in the run folder (issue #13): trained on a folder of PNGs with a separate test
folder, the sources are then deleted; evaluate, the privacy audit and an erasure request (with the report and
metrics it regenerates) work from the stored splits alone."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import shipyard
from shipyard.data.forget import forget
from shipyard.data.split_files import read_split, stored_splits
from shipyard.erasure import refresh_run_outputs
from shipyard.evaluation.membership import audit_privacy
from shipyard.evaluation.saved import evaluate_run

NAMES = ["zero", "one", "two"]


def _write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> list[str]:
    """``<root>/<label name>/<n>.png``; returns the files in the order the loader reads them (sorted)."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.png"))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    root = tmp_path_factory.mktemp("image-run")
    digits = load_digits(n_class=3)
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    train_files = _write_folder(root / "data" / "train", images[:150], digits.target[:150])
    test_files = _write_folder(root / "data" / "test", images[150:200], digits.target[150:200])
    job = shipyard.Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {"format": "images", "path": str(root / "data" / "train"), "grayscale": True},
                "test_source": {"format": "images", "path": str(root / "data" / "test"), "grayscale": True},
                "split": {"method": "stratified", "validation": 0.2, "test": 0.0},
                "cleaning": {"drop_duplicates": False},
            },
            "model": {"type": "cnn", "channels": [8], "convs_per_block": 1, "head_hidden": 16},
            "training": {"epochs": 1, "max_steps": 3, "batch_size": 32, "seed": 0},
        }
    )
    run_dir = root / "runs" / "r"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shipyard.run(job, run_dir=run_dir)
    shutil.rmtree(root / "data")  # from here on, only the run folder exists
    return run_dir, train_files, test_files


def test_the_splits_are_stored_with_keys_back_to_their_source_files(
    image_run: tuple[Path, list[str], list[str]],
) -> None:
    run, train_files, test_files = image_run
    paths = stored_splits(run)
    assert sorted(paths) == ["test", "train", "validation"]
    assert all(p.suffix == ".safetensors" for p in paths.values())
    frames = {name: read_split(path) for name, path in paths.items()}
    assert len(frames["train"]) + len(frames["validation"]) == 150 and len(frames["test"]) == 50
    assert set(frames["test"]["source"]) == {"test_source"} and set(frames["train"]["source"]) == {"source"}
    # `row` is the 1-based number in the source as read (sorted <label>/<file>): it names the file and its label
    held = sorted([*frames["train"]["row"], *frames["validation"]["row"]])
    assert held == list(range(1, 151)) and sorted(frames["test"]["row"]) == list(range(1, 51))
    for frame, files in ((frames["train"], train_files), (frames["test"], test_files)):
        for row, label in zip(frame["row"], frame["label"], strict=True):
            assert files[row - 1].split("/")[0] == label
    assert frames["test"]["image"].iloc[0].shape == (8, 8)


def test_evaluate_and_audit_read_the_stored_splits(image_run: tuple[Path, list[str], list[str]]) -> None:
    run, _, _ = image_run
    trained = json.loads((run / "metrics.json").read_text())["test"]
    again = evaluate_run(run)
    assert again["accuracy"] == pytest.approx(trained["accuracy"]) and again["log_loss"] == pytest.approx(
        trained["log_loss"], rel=1e-5
    )
    audit = audit_privacy(run, max_samples=50)
    assert audit["nonmembers_from"] == "test" and 0.0 <= audit["max_auc"] <= 1.0


def test_an_erasure_request_reaches_one_image_and_regenerates_the_outputs(
    image_run: tuple[Path, list[str], list[str]], tmp_path: Path
) -> None:
    original, _, test_files = image_run
    run = tmp_path / "runs" / "r"
    shutil.copytree(original, run)
    row = 1 + test_files.index(next(f for f in test_files if f.startswith("two/")))
    result = forget(run, f"source == 'test_source' and row == {row}")
    assert result["by_split"] == {"train": 0, "validation": 0, "test": 1}
    written = refresh_run_outputs(run)
    assert "metrics.json" in written and "report.html" in written
    test = read_split(stored_splits(run)["test"])
    assert len(test) == 49 and row not in test["row"].tolist()
    summary = json.loads((run / "data_summary.json").read_text())
    assert summary["rows"]["test"] == 49
    assert evaluate_run(run)["accuracy"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    )
