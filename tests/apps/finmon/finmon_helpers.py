"""Helpers for the finmon tests (a module of its own name: several test folders have a conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def burst_stream(t0: int, seed: int = 0) -> list[dict[str, Any]]:
    """90 quiet minutes of Nokia news (two a minute, mixed tone), 12 bad-news stories in one minute, then a later
    document that closes that minute's bucket: with
    ``config_dict``'s alert rules and ``keyword_model``, one negative alert on NOKIA in minute 90."""
    rng = np.random.default_rng(seed)
    filler = ["plant", "order", "network", "deal", "unit", "board", "market", "quarter", "guidance", "contract"]

    def words() -> str:  # distinct filler, so that no two documents are near-duplicates
        return " ".join(rng.choice(filler, 6)) + f" {rng.integers(1_000_000)}"

    docs = [{"id": f"b{m}-{k}", "ts": t0 + m * 60 + k, "text": f"Nokia {rng.choice(['rose', 'fell', 'met'])} {words()}"}
            for m in range(90) for k in range(2)]  # fmt: skip
    docs += [{"id": f"x{k}", "ts": t0 + 90 * 60 + k, "text": f"Nokia profit fell, a loss {words()}"} for k in range(12)]
    return [*docs, {"id": "late", "ts": t0 + 93 * 60, "text": "Stora Enso opened a mill"}]  # closes minute 90
