"""Trains a small model with the engine on synthetic data; run as a subprocess (or under torchrun) by the
kill-and-resume tests."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shipyard.config.schema import TrainingConfig
from shipyard.models.registry import InputSpec, build_model
from shipyard.training.engine import Engine


@dataclass
class Split:
    inputs: dict[str, np.ndarray]
    target: np.ndarray


def make_data(n: int = 600, seed: int = 0) -> tuple[Split, Split]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] * x[:, 2]) > 0).astype(np.int64)
    cut = int(n * 0.8)
    return Split({"x": x[:cut]}, y[:cut]), Split({"x": x[cut:]}, y[cut:])


def config(**overrides: object) -> TrainingConfig:
    base = dict(
        epochs=4,
        batch_size=16,
        learning_rate=0.01,
        checkpoint_every_steps=5,
        seed=3,
        gradient_accumulation=2,
        clip_grad_norm=1.0,
        schedule={"name": "cosine", "warmup_steps": 5},
        num_threads=1,
    )
    base.update(overrides)
    return TrainingConfig.model_validate(base)


def kill_mid_second_epoch(run_dir: Path, kill: Callable[[], None], timeout: float = 120.0) -> None:
    """Wait until ``run_dir`` holds a checkpoint from inside the second epoch, then ``kill`` (also on failure)."""
    pointer = run_dir / "checkpoints" / "latest.json"
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if pointer.is_file():
                state = json.loads(pointer.read_text())["state"]
                if state["epoch"] >= 1 and state["group"] > 0:
                    return
            time.sleep(0.01)
        raise AssertionError("no mid-epoch checkpoint appeared")
    finally:
        kill()


def train(run_dir: Path, resume: bool, slow: float = 0.0, rows: int = 600) -> None:
    import time

    import torch

    from shipyard.training.engine import seed_everything

    train_split, val_split = make_data(rows)
    seed_everything(3)
    spec = InputSpec(kind="tabular", n_features=10, n_outputs=2)
    model = build_model("mlp", {"hidden": [32, 16], "dropout": 0.2, "batch_norm": True}, spec)
    if slow:
        original = model.forward

        def slowed(**kw: torch.Tensor) -> torch.Tensor:
            time.sleep(slow)
            return original(**kw)

        model.forward = slowed  # type: ignore[method-assign]
    # with a weight average: resume must also continue the average exactly
    engine = Engine(config(ema=0.9), "classification", labels=["0", "1"], show_progress=False)
    engine.fit(model, train_split, val_split, run_dir, resume=resume)
    if not engine.ctx.is_main:  # under torchrun rank 0 writes the result
        return
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run_dir / "final.safetensors"))


if __name__ == "__main__":
    slow = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 600
    train(Path(sys.argv[1]), resume=sys.argv[2] == "resume", slow=slow, rows=rows)
