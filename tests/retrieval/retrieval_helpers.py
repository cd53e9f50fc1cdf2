"""A small slice of the Bitext customer-support data (6 intents, 20 queries each) and a tiny retrieval run trained
on it once per test session (shared by the retrieval, serve and support-application tests)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shipyard.settings import data_dir

BITEXT = "customer_support_faq/Bitext_Sample_Customer_Support_Training_Dataset.csv"
INTENTS = ["track_order", "cancel_order", "get_refund", "recover_password", "delivery_options", "complaint"]
_CACHE: dict[str, Path] = {}


def bitext_slice(folder: Path) -> Path:
    path = data_dir() / BITEXT
    if not path.is_file():
        pytest.skip(f"the shared Bitext data is not at {path}")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "bitext_small.csv"
    if not out.is_file():
        frame = pd.read_csv(path)
        frame = frame[frame["intent"].isin(INTENTS)].groupby("intent").head(20)
        frame[["instruction", "intent", "response"]].to_csv(out, index=False)
    return out


def retrieval_job(source: Path, run_dir: Path, **retrieval: object) -> dict:
    return {
        "task": "retrieval",
        "name": "tiny-retrieval",
        "data": {"source": {"path": str(source)}},
        "retrieval": {
            "query_column": "instruction",
            "passage_column": "response",
            "group_column": "intent",
            **retrieval,
        },
        "model": {"type": "biencoder", "query_max_length": 24, "passage_max_length": 48},
        "training": {
            "batch_size": 16,
            "epochs": 1,
            "max_steps": 3,
            "learning_rate": 5e-5,
            "seed": 0,
            "checkpoint_every_steps": 2,
            "num_threads": 2,
        },
        "output": {"run_dir": str(run_dir)},
    }


def tiny_run(root: Path) -> Path:
    """The hybrid-ranking run with BM25 hard negatives, trained once per session."""
    if "run" not in _CACHE:
        from shipyard.config.schema import Job
        from shipyard.pipeline import run_job

        source = bitext_slice(root)
        job = Job.model_validate(retrieval_job(source, root / "run", hard_negatives=True, ranking="hybrid"))
        _CACHE["run"] = run_job(job, base_dir=root, show_progress=False).run_dir
    return _CACHE["run"]
