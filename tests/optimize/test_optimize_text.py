"""shipyard optimize on a small transformer run trained inside the test: every method (ONNX with the fused
kernels, dynamic int8, structured head / FFN pruning, a 1-layer distilled student) writes an artefact that passes
its checks and predicts raw sentences like the original run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import shipyard
from shipyard.artifact import Artifact
from shipyard.optimize import optimize_run

SENTENCES = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate ."]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A 2-layer BERT (random init, MiniLM's tokenizer) fine-tuned on 600 SST-2 sentences: small enough for CI."""
    from transformers import AutoTokenizer

    from shipyard.data.text import resolve_model_dir
    from tiny_bert import save_tiny_bert

    root = tmp_path_factory.mktemp("text-opt")
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir("minilm")))
    encoder = save_tiny_bert(root / "tiny-bert", vocab_size=tokenizer.vocab_size, hidden_size=64, tokenizer=tokenizer)
    sst2 = data_dir / "sst2"
    job = shipyard.Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {"path": str(sst2 / "train.tsv"), "format": "tsv", "limit": 600},
                "test_source": {"path": str(sst2 / "test.tsv"), "format": "tsv", "limit": 120},
                "target": "label",
                "features": [{"name": "sentence", "type": "text"}],
                "split": {"method": "stratified", "validation": 0.1, "test": 0.0},
                "text": {"max_length": 48},
            },
            "model": {"type": "transformer", "pretrained": str(encoder), "dropout": 0.0},
            "training": {"epochs": 3, "batch_size": 32, "learning_rate": 0.001, "seed": 0, "num_threads": 1},
        }
    )
    run_dir = root / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shipyard.run(job, run_dir=run_dir)
    return run_dir


def _predicts_sentences(folder: Path) -> None:
    art = Artifact.load(folder)
    out = art.predict_records([{"sentence": s} for s in SENTENCES])
    assert len(out) == 2
    for row in out:
        assert str(row["label"]) in {str(label) for label in art.labels or []}
        assert abs(sum(row["probabilities"].values()) - 1.0) < 1e-4


def test_every_method_on_a_trained_transformer(text_run: Path) -> None:
    cfg = {
        "methods": ["onnx", "int8", "prune", "distill"],
        "structured": True,
        "sparsity": 0.5,
        "student": {"layers": 1},
        "distill_epochs": 1,
        "latency_repeats": 5,
        "threads": 1,
    }
    table = optimize_run(text_run, cfg)
    rows = {r["method"]: r for r in table["rows"]}
    assert all(r["status"] == "ok" for r in rows.values()), [r.get("error") for r in rows.values()]

    onnx = rows["onnx"]
    assert onnx["exporter"] == "fused"  # ONNX Runtime's Attention / SkipLayerNormalization kernels
    assert onnx["parity"]["passed"] and onnx["parity"]["max_abs_diff"] <= 1e-4
    assert onnx["parity"]["top1_agreement"] == 1.0 and onnx["parity"]["rows"] == 120

    int8 = rows["int8"]
    assert int8["parity"]["passed"] and int8["agreement"] >= 0.9
    assert int8["size_ratio"] > 2.0  # int8 weights (the embedding table included) against fp32

    prune = rows["prune"]
    assert prune["parameters"] < rows["original"]["parameters"]

    student = rows["distill"]
    assert student["parameters"] < rows["original"]["parameters"]

    for method in ("onnx", "int8", "prune", "distill"):
        _predicts_sentences(text_run / "optimized" / method)
    assert (text_run / "optimized" / "optimize.json").is_file()
