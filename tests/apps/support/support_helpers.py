"""A support assistant over the tiny Bitext retrieval run (tests/retrieval/retrieval_helpers.py), with a demo
orders table, built once per test session."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "retrieval"))
from retrieval_helpers import bitext_slice, tiny_run

from shipyard.apps.support.tools import write_orders

ORDERS = [
    {
        "order_id": f"{70000000 + i}",
        "status": ["shipped", "processing", "delayed"][i % 3],
        "eta": ["tomorrow", "in 3-5 days", "in 7-10 days"][i % 3],
        "email": f"c{i}@example.com",
        "product": "lamp",
    }
    for i in range(200)
]


def support_config(root: Path, **changes: Any) -> Path:
    """A config file in ``root`` (its own store), over the session's tiny run."""
    run = tiny_run(root.parent / "tiny_retrieval")  # trained once per session (cached by the helper)
    root.mkdir(parents=True, exist_ok=True)
    orders = root / "orders.db"
    if not orders.exists():
        write_orders(orders, ORDERS)
    raw: dict[str, Any] = {
        "retrieval_run": str(run),
        "escalation": {"intents": ["complaint"], "min_confidence": 0.0},
        "tools": {
            "order_status": {"db": "orders.db", "timeout_s": 2.0},
            "order_intents": ["track_order", "cancel_order", "delivery_options", "get_refund"],
        },
        "store": {"path": "support.db", "retention_days": 30},
        "templates": {"recover_password": "To reset your password: {answer}"},
        "placeholders": {"Website Name": "shop.example"},
        "products": ["desk lamp"],
    }
    for key, value in changes.items():
        raw[key] = value
    path = root / "support.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def tiny_intent_run(root: Path) -> Path:
    """A text classification run (MiniLM, 3 steps) on the same Bitext slice: the intent model of the loop tests.
    It lives in ``root/runs/intent`` (a runs folder, so the loop store of its feedback is ``root/runs``)."""
    from shipyard.config.schema import Job
    from shipyard.pipeline import run_job

    run = root / "runs" / "intent"
    if (run / "model" / "shipyard.json").is_file():
        return run
    job = {
        "task": "classification",
        "name": "tiny-intent",
        "data": {
            "source": {"path": str(bitext_slice(root))},
            "target": "intent",
            "features": [{"name": "instruction", "type": "text"}],
            "split": {"method": "stratified", "validation": 0.2, "test": 0.0},
            "text": {"max_length": 24},
        },
        "model": {"type": "transformer", "pretrained": "minilm", "mode": "frozen"},
        "training": {"batch_size": 16, "epochs": 1, "max_steps": 3, "learning_rate": 1e-3, "seed": 0,
                     "num_threads": 2},
        "output": {"run_dir": str(run)},
    }  # fmt: skip
    return run_job(Job.model_validate(job), base_dir=root, show_progress=False).run_dir
