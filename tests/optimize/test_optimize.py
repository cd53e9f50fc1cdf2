"""shipyard optimize on small digits runs: every method gives a loadable artifact, checks hold, bad input fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from shipyard.artifact import Artifact
from shipyard.errors import ShipyardError
from shipyard.optimize import optimize_run, parse_config

FAST = {"latency_repeats": 5, "calibration_samples": 64}


def _digits_frame(n: int = 12) -> pd.DataFrame:
    d = load_digits()
    return pd.DataFrame({"image": [img.astype(np.uint8) for img in d.images[:n]]})


def _rows(table: dict) -> dict[str, dict]:
    return {r["method"]: r for r in table["rows"]}


def _predicts(folder: Path) -> Artifact:
    art = Artifact.load(folder)
    pred = art.predict_frame(_digits_frame())
    assert len(pred["label"]) == 12
    assert pred["probabilities"].shape == (12, 10)
    return art


def test_mlp_every_method(mlp_run: Path) -> None:
    table = optimize_run(mlp_run, {"methods": ["onnx", "int8", "prune", "distill"], "distill_epochs": 1, **FAST})
    rows = _rows(table)
    assert [r["status"] for r in table["rows"]] == ["ok"] * 5, table["rows"]
    for method in ("onnx", "int8", "prune", "distill"):
        folder = mlp_run / "optimized" / method
        assert (folder / "shipyard.json").is_file() and (folder / "preprocessor.json").is_file()
        _predicts(folder)
    assert Artifact.load(mlp_run / "optimized" / "onnx").backend == "onnx"
    # parity of the fp32 export, recorded in the row and in the artifact
    parity = rows["onnx"]["parity"]
    assert parity["passed"] and parity["max_abs_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    assert rows["onnx"]["exporter"] == "dynamo"
    meta = json.loads((mlp_run / "optimized" / "onnx" / "shipyard.json").read_text())
    assert meta["backend"] == "onnx" and meta["optimization"]["parity"]["passed"]
    # int8 is smaller than both the fp32 ONNX file and the original safetensors
    assert rows["int8"]["size_bytes"] < rows["onnx"]["size_bytes"]
    assert rows["int8"]["size_bytes"] < rows["original"]["size_bytes"]
    # magnitude pruning reached its sparsity and says it gives no dense speed-up
    assert rows["prune"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert any("no speed-up" in n for n in rows["prune"]["notes"])
    # the student is smaller and saved with its own widths
    assert rows["distill"]["parameters"] < rows["original"]["parameters"]
    student = json.loads((mlp_run / "optimized" / "distill" / "shipyard.json").read_text())
    assert student["model"]["params"]["hidden"] == [24, 12]
    for row in table["rows"]:
        assert row["latency_p50_ms"] > 0 and row["throughput_rows_s"] > 0
        assert 0.0 <= row["value"] <= 1.0
    # the table and the report section are on disk; the section also comes back for the run report
    saved = json.loads((mlp_run / "optimized" / "optimize.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["original", "onnx", "int8", "prune", "distill"]
    page = (mlp_run / "optimized" / "optimize_section.html").read_text()
    assert "data:image/png;base64," in page
    assert table["section"].title == "Optimisation trade-offs"
    assert not list((mlp_run / "optimized").glob(".work-*"))


def test_mlp_structured_prune_shrinks(mlp_run: Path) -> None:
    table = optimize_run(mlp_run, {"methods": ["prune"], "structured": True, "sparsity": 0.5, **FAST})
    rows = _rows(table)
    assert rows["prune"]["status"] == "ok"
    assert rows["prune"]["parameters"] < 0.6 * rows["original"]["parameters"]
    meta = json.loads((mlp_run / "optimized" / "prune" / "shipyard.json").read_text())
    assert meta["model"]["params"]["hidden"] == [24, 12]
    art = _predicts(mlp_run / "optimized" / "prune")
    assert sum(p.numel() for p in art.model.parameters()) == rows["prune"]["parameters"]


def test_cnn_static_int8_and_channel_pruning(cnn_run: Path) -> None:
    # the TorchScript exporter here (the MLP test covers the default, dynamo)
    table = optimize_run(cnn_run, {"methods": ["onnx", "int8"], "exporter": "torchscript", **FAST})
    rows = _rows(table)
    assert rows["onnx"]["exporter"] == "torchscript"
    assert rows["onnx"]["status"] == "ok" and rows["onnx"]["parity"]["max_abs_diff"] <= 1e-4
    assert rows["int8"]["status"] == "ok" and rows["int8"]["variant"] == "int8 static QDQ"
    assert rows["int8"]["size_bytes"] < rows["onnx"]["size_bytes"]
    _predicts(cnn_run / "optimized" / "int8")

    table = optimize_run(
        cnn_run, {"methods": ["prune"], "structured": True, "sparsity": 0.5, "prune_finetune_epochs": 0, **FAST}
    )
    rows = _rows(table)
    assert rows["prune"]["status"] == "ok", rows["prune"]
    assert rows["prune"]["parameters"] < rows["original"]["parameters"]
    meta = json.loads((cnn_run / "optimized" / "prune" / "shipyard.json").read_text())
    assert meta["model"]["params"]["channels"] == [4, 8]
    _predicts(cnn_run / "optimized" / "prune")


def test_failed_parity_is_a_failed_row_and_leaves_no_folder(mlp_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shipyard.optimize.onnx_export as ox

    real = ox.ort_runner

    def drifting(session):  # a broken runtime: outputs off by 0.01
        run = real(session)
        return lambda inputs: run(inputs) + 0.01

    monkeypatch.setattr(ox, "ort_runner", drifting)
    stale = mlp_run / "optimized" / "onnx"
    stale.mkdir(parents=True, exist_ok=True)
    table = optimize_run(mlp_run, {"methods": ["onnx"], **FAST})
    row = _rows(table)["onnx"]
    assert row["status"] == "failed"
    assert "parity" in row["error"] and row["notes"][0].startswith("FAILED")
    assert row["parity"]["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    assert not stale.exists()


def test_bad_input(tmp_path: Path, mlp_run: Path) -> None:
    with pytest.raises(ShipyardError, match="no finished model"):
        optimize_run(tmp_path, {"methods": ["onnx"]})
    with pytest.raises(ShipyardError, match="did you mean `onnx`"):
        parse_config({"methods": ["onxx"]})
    with pytest.raises(ShipyardError, match="did you mean `int8`"):
        parse_config({"methods": ["int9"]})
    with pytest.raises(ShipyardError, match="sparsity"):
        parse_config({"methods": ["prune"], "sparsity": 1.5})
    with pytest.raises(ShipyardError, match="sparsity"):
        parse_config({"methods": ["prune"], "sparsity": 0})
    with pytest.raises(ShipyardError, match="did you mean `sparsity`"):
        parse_config({"sparsty": 0.5})
    with pytest.raises(ShipyardError, match="not smaller than its teacher"):
        optimize_run(mlp_run, {"methods": ["distill"], "student": {"hidden": [256, 256]}})


def test_run_without_model_folder_copy(tmp_path: Path, mlp_run: Path) -> None:
    # a run folder whose training never finished: config and checkpoints but no model/
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(mlp_run / "config.yaml", broken / "config.yaml")
    with pytest.raises(ShipyardError, match=r"model/shipyard\.json"):
        optimize_run(broken, {"methods": ["int8"]})
