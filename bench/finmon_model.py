"""The sentiment model for bench/finmon.py: all-MiniLM-L6-v2 (the installed package, offline) fine-tuned on
Financial PhraseBank (50Agree, the seeded stratified 80/10/10 split of `examples/financial_phrasebank.yaml`) with a
short recipe (2 epochs, max length 64, lr 5e-5, batch 32, linear decay after 10 % warm-up), then `optimize` int8
(dynamic quantisation of the Linear layers). The test accuracy and the int8 check are printed.

    PYTHONPATH=src SHIPYARD_DATA_DIR=../shared/data nice -n 10 python bench/finmon_model.py RUN_DIR [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

import shipyard
from shipyard.optimize import optimize_run


def train(run_dir: Path, data_dir: Path, epochs: int = 2, max_length: int = 64, threads: int | None = None) -> Path:
    job = shipyard.Job.model_validate(
        {
            "name": "finmon-bench-minilm",
            "task": "classification",
            "data": {
                "source": {"path": str(data_dir / "financial_phrasebank" / "Sentences_50Agree.txt"),
                           "format": "delimited_lines", "line_separator": "@", "encoding": "latin-1"},
                "target": "label",
                "features": [{"name": "text", "type": "text"}],
                "split": {"method": "stratified", "validation": 0.1, "test": 0.1},
                "text": {"max_length": max_length},
            },
            "model": {"type": "transformer", "pretrained": "minilm", "pooling": "mean", "dropout": 0.1,
                      "mode": "full"},
            "training": {"optimizer": "adamw", "learning_rate": 5e-5, "weight_decay": 0.01,
                         "schedule": {"name": "linear", "warmup_ratio": 0.1}, "batch_size": 32,
                         "epochs": epochs, "seed": 0, "num_threads": threads},
        }
    )  # fmt: skip
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = shipyard.run(job, run_dir=run_dir)
    logging.info("trained in %.0fs: test accuracy %.4f", time.time() - started, result.metrics["test"]["accuracy"])
    optimize_run(run_dir, {"methods": ["int8"]})
    report = json.loads((run_dir / "optimized" / "optimize.json").read_text())
    logging.info("optimize: %s", json.dumps(report)[:2000])
    return run_dir


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    # on a shared, overloaded machine one thread trains many times faster than two fighting for the cores
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    train(
        args.run_dir,
        Path(os.environ.get("SHIPYARD_DATA_DIR", "../shared/data")),
        args.epochs,
        args.max_length,
        args.threads,
    )
