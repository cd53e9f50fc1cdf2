"""A recommendation run killed with SIGKILL inside its second epoch and resumed with ``--resume`` ends with the
same weights (bit for bit) and metrics as one that ran uninterrupted: the engine's exact resume, with BPR's
negative sampler drawing from the checkpointed generator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from _rec_train_script import main as train_job
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "_rec_train_script.py"


def _wait_mid_second_epoch(run_dir: Path, timeout: float = 120.0) -> None:
    pointer = run_dir / "checkpoints" / "latest.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pointer.is_file():
            state = json.loads(pointer.read_text())["state"]
            if state["epoch"] >= 1 and state["group"] > 0:
                return
        time.sleep(0.01)
    raise AssertionError("no mid-epoch checkpoint appeared")


def test_sigkill_then_resume_matches_uninterrupted(data_dir: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(data_dir / "movielens-100k" / "u.data", sep="\t", names=["user_id", "item_id", "rating", "ts"])
    events = tmp_path / "events.csv"
    raw[raw.user_id <= 12].rename(columns={"ts": "timestamp"}).to_csv(events, index=False)
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    run = [sys.executable, str(SCRIPT), str(events)]
    full, killed = tmp_path / "runs" / "full", tmp_path / "runs" / "killed"
    train_job(events, full, "fresh")  # the uninterrupted run, in this process

    proc = subprocess.Popen([*run, str(killed), "fresh", "0.03"], env=env)
    try:
        _wait_mid_second_epoch(killed)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (killed / ".incomplete").exists() and not (killed / "model" / "model.safetensors").exists()
    subprocess.run([*run, str(killed), "resume"], check=True, env=env, timeout=300)

    a, b = load_file(str(full / "model" / "model.safetensors")), load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (full, killed))
    assert ma["test"] == mb["test"] and ma["training"]["steps"] == mb["training"]["steps"]
    assert not (killed / ".incomplete").exists()
