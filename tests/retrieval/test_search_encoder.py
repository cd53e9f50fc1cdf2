"""The retrieval run's encoder exported to ONNX and int8 (`shipyard optimize RUN`): checked against torch, written
whole into model/onnx/, then used by `Searcher` (so by /search and the support assistant) by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import ShipyardError
from shipyard.models.searcher import Searcher
from shipyard.optimize.search_encoder import MIN_COSINE, export_search_encoder


def test_export_checks_against_torch_and_search_uses_it(retrieval_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(retrieval_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(ShipyardError, match="no exported encoder"):
        Searcher.load(run, encoder="onnx")
    record = export_search_encoder(run, sample=24)
    onnx_dir = run / "model" / "onnx"
    assert json.loads((onnx_dir / "onnx.json").read_text()) == record
    fp32 = record["files"]["fp32"]
    assert fp32["ok"] and fp32["cosine_min"] >= MIN_COSINE and fp32["same_best_passage"] == 1.0
    assert fp32["rows"] == 48  # 24 held-out queries from splits/test.parquet and 24 passages
    assert (onnx_dir / "encoder.int8.onnx").stat().st_size < 0.5 * (onnx_dir / "encoder.onnx").stat().st_size
    assert record["serve"] == ("int8" if record["files"]["int8"]["ok"] else "fp32")
    assert not [p.name for p in run.joinpath("model").iterdir() if p.name.startswith(".")]  # no scratch left
    torch_searcher = Searcher.load(run, encoder="torch")
    served = Searcher.load(run)  # auto: the exported file onnx.json names
    assert served.onnx_file == onnx_dir / record["files"][record["serve"]]["file"]
    queries = ["where is my order?", "I forgot my password", ""]
    cos = (torch_searcher.embed(queries) * Searcher.load(run, encoder="onnx").embed(queries)).sum(axis=1)
    assert np.all(cos > 0.999)
    ids = [h["id"] for h in torch_searcher.search(["how do I cancel my order"], 3)[0]]
    assert [h["id"] for h in Searcher.load(run, encoder="onnx").search(["how do I cancel my order"], 3)[0]] == ids
    added = served.add([{"id": 900_001, "text": "Our shop opens at nine.", "group": "hours"}])  # ONNX-embedded
    assert added == 1 and served.search(["when does the shop open"], 1, ranking="dense")[0]


def test_optimize_cli_refuses_other_methods_for_a_retrieval_run(retrieval_run: Path) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.root import app

    result = CliRunner().invoke(app, ["optimize", str(retrieval_run), "--methods", "prune"])
    assert result.exit_code != 0 and "ONNX (and int8) only" in result.output
