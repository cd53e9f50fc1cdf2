"""The sentiment model for bench/finmon.py when no MiniLM PhraseBank run is at hand: a 2-layer, 64-wide BERT
(random init, MiniLM's tokenizer) fine-tuned on Financial PhraseBank (50Agree, seeded stratified 80/10/10 split),
then `optimize` int8. Much weaker than MiniLM (the accuracy is printed), but the same artefact API and the
same int8 path; the monitor's mechanics and throughput figures are what the benchmark reports.

    PYTHONPATH=src python bench/finmon_model.py RUN_DIR
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

import shipyard
from shipyard.data.text import resolve_model_dir
from shipyard.optimize import optimize_run


def train(run_dir: Path, data_dir: Path, hidden: int = 64, layers: int = 2, epochs: int = 2) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir("minilm")))
    encoder = run_dir.parent / f"{run_dir.name}-encoder"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=2 * hidden, max_position_embeddings=128)  # fmt: skip
    BertModel(config, add_pooling_layer=False).save_pretrained(str(encoder))
    tokenizer.save_pretrained(str(encoder))
    job = shipyard.Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {"path": str(data_dir / "financial_phrasebank" / "Sentences_50Agree.txt"),
                           "format": "delimited_lines", "line_separator": "@", "encoding": "latin-1"},
                "target": "label",
                "features": [{"name": "text", "type": "text"}],
                "split": {"method": "stratified", "validation": 0.1, "test": 0.1},
                "text": {"max_length": 48},
            },
            "model": {"type": "transformer", "pretrained": str(encoder), "dropout": 0.1},
            "training": {"epochs": epochs, "batch_size": 32, "learning_rate": 0.001, "seed": 0},
        }
    )  # fmt: skip
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = shipyard.run(job, run_dir=run_dir)
    print(f"trained in {time.time() - started:.0f}s: test accuracy {result.metrics['test']['accuracy']:.3f}")
    optimize_run(run_dir, {"methods": ["int8"]})
    print(json.dumps(json.loads((run_dir / "optimized" / "optimize.json").read_text()), indent=1)[:1500])
    return run_dir


if __name__ == "__main__":
    train(Path(sys.argv[1]), Path(os.environ.get("SHIPYARD_DATA_DIR", "../shared/data")))
