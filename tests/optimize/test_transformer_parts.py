"""Transformer pieces of shipyard optimize on a tiny randomly initialised BERT (no pretrained weights needed):
ONNX export with dynamic batch and sequence axes, dynamic int8, head / FFN pruning, layer-dropping students."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from shipyard.errors import ShipyardError
from shipyard.models.registry import InputSpec, build_for_task
from shipyard.optimize.distill import plan_student
from shipyard.optimize.measure import ort_runner, ort_session, run_batched, torch_runner
from shipyard.optimize.onnx_export import export_onnx, parity
from shipyard.optimize.prune import prune_transformer
from shipyard.optimize.quantize import quantize_dynamic_int8
from tiny_bert import save_tiny_bert

SPEC = InputSpec(kind="text", n_outputs=2, task="classification")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, dict, dict[str, np.ndarray]]:
    folder = save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), vocab_size=120, hidden_size=32)
    params = {"pretrained": str(folder), "dropout": 0.0}
    model = build_for_task("transformer", params, SPEC).eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 120, size=(24, 12)).astype(np.int64)
    mask = np.ones_like(ids)
    for i, length in enumerate(rng.integers(3, 13, size=24)):  # rows of different lengths, right-padded
        mask[i, length:] = 0
        ids[i, length:] = 0
    return model, params, {"input_ids": ids, "attention_mask": mask}


def test_export_parity_and_dynamic_axes(tiny, tmp_path: Path) -> None:
    model, _, inputs = tiny
    path = tmp_path / "m.onnx"
    # auto picks ONNX Runtime's fused transformer kernels for an encoder
    assert export_onnx(model, inputs, path) == "fused"
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= ops
    check = parity(model, path, inputs, task="classification", threads=1)
    assert check["max_abs_diff"] <= 1e-4 and check["top1_agreement"] == 1.0
    session = ort_session(path, 1)
    for batch, length in ((1, 3), (7, 12)):  # other batch sizes and sequence lengths than the traced ones
        feed = {k: v[:batch, :length] for k, v in inputs.items()}
        np.testing.assert_allclose(ort_runner(session)(feed), torch_runner(model)(feed), atol=1e-4)
    int8 = tmp_path / "int8.onnx"
    quantize_dynamic_int8(path, int8, tmp_path)
    assert int8.stat().st_size < path.stat().st_size
    out = run_batched(ort_runner(ort_session(int8, 1)), inputs)
    assert out.shape == (24, 2) and np.isfinite(out).all()
    assert "QAttention" in {n.op_type for n in onnx.load(str(int8)).graph.node}


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_plain_exporters_still_match_torch(tiny, tmp_path: Path, exporter: str) -> None:
    model, _, inputs = tiny
    path = tmp_path / "m.onnx"
    assert export_onnx(model, inputs, path, exporter=exporter) == exporter
    assert "Attention" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    assert parity(model, path, inputs, task="classification", threads=1)["max_abs_diff"] <= 1e-4


def test_fused_exporter_needs_an_encoder(tmp_path: Path) -> None:
    dense = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(ShipyardError, match="needs a transformer encoder"):
        export_onnx(dense, {"x": np.zeros((2, 3), dtype=np.float32)}, tmp_path / "m.onnx", exporter="fused")


def test_head_and_ffn_pruning_shrinks_and_runs(tiny, tmp_path: Path) -> None:
    import copy

    model, _, inputs = tiny
    small = copy.deepcopy(model)
    info = prune_transformer(small, keep_fraction=0.5)
    assert (info["heads_before"], info["heads_after"]) == (8, 4)
    assert (info["ffn_before"], info["ffn_after"]) == (128, 64)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) < count(model)
    out = torch_runner(small)(inputs)
    assert out.shape == (24, 2) and np.isfinite(out).all()
    path = tmp_path / "pruned.onnx"
    assert export_onnx(small, inputs, path, exporter="torchscript") == "torchscript"
    assert parity(small, path, inputs, task="classification", threads=1)["max_abs_diff"] <= 1e-4


def test_layer_dropping_student(tiny) -> None:
    model, params, inputs = tiny
    plan = plan_student(model, "transformer", params, SPEC, None, {"layers": 1})
    assert plan.description == {"layers": 1, "teacher_layers": 2}
    assert plan.student_parameters < plan.teacher_parameters
    assert plan.model.encoder.config.num_hidden_layers == 1
    assert torch_runner(plan.model.eval())(inputs).shape == (24, 2)
    with pytest.raises(ShipyardError, match="more than its teacher"):
        plan_student(model, "transformer", params, SPEC, None, {"layers": 3})
    with pytest.raises(ShipyardError, match="unknown student key"):
        plan_student(model, "transformer", params, SPEC, None, {"hidden": [8]})
