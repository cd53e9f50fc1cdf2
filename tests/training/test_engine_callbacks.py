"""Issue #13: Engine.fit is a short loop with callbacks (training/callbacks.py), it logs the base learning rate,
and the fused-optimiser rule lives once, below models and training."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import torch

from shipyard.models.registry import InputSpec, build_model
from shipyard.training.callbacks import Callback, FitContext
from shipyard.training.checkpoint import load_latest
from shipyard.training.engine import Engine, read_log

sys.path.insert(0, str(Path(__file__).parent))
from _train_script import config, make_data

SRC = Path(__file__).resolve().parents[2] / "src" / "shipyard"


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", {"hidden": [16]}, InputSpec(kind="tabular", n_features=10, n_outputs=2))


class Recorder(Callback):
    """Counts every hook and keeps a counter in the checkpoint."""

    state_key = "recorder"

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.steps = 0
        self.loaded: dict[str, Any] | None = None

    def _seen(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def on_fit_start(self, fit: FitContext) -> None:
        self._seen("on_fit_start")

    def before_optimizer_step(self, fit: FitContext) -> None:
        self._seen("before_optimizer_step")

    def after_optimizer_step(self, fit: FitContext) -> None:
        self._seen("after_optimizer_step")
        self.steps += 1

    def on_train_batch(self, fit: FitContext, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._seen("on_train_batch")
        return batch

    def on_fit_end(self, fit: FitContext) -> dict[str, Any]:
        self._seen("on_fit_end")
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.loaded = state
        self.steps = int((state or {}).get("steps", 0))


def test_a_callback_sees_every_step_and_its_state_is_checkpointed_and_restored(tmp_path: Path) -> None:
    train, val = make_data()
    recorder = Recorder()
    engine = Engine(config(epochs=2), "classification", labels=["0", "1"], show_progress=False, callbacks=[recorder])
    fit = engine.fit(_mlp(), train, val, tmp_path)
    assert recorder.calls["on_fit_start"] == recorder.calls["on_fit_end"] == 1
    assert recorder.calls["before_optimizer_step"] == recorder.calls["after_optimizer_step"] == fit.global_step
    assert recorder.calls["on_train_batch"] >= fit.global_step
    assert load_latest(tmp_path / "checkpoints")["recorder"] == {"steps": fit.global_step}
    # resuming the finished run hands the callback its saved state back
    again = Recorder()
    Engine(config(epochs=2), "classification", labels=["0", "1"], show_progress=False, callbacks=[again]).fit(
        _mlp(), train, val, tmp_path, resume=True
    )
    assert again.loaded == {"steps": fit.global_step}


class _LayerwiseMLP(torch.nn.Module):
    """Two parameter groups like a transformer's layer-wise decay: the first (lower) one at a tenth of the rate."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lower = torch.nn.Linear(10, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.lower(x)))

    def optimizer_groups(self, cfg: Any) -> list[dict[str, Any]]:
        return [
            {"params": list(self.lower.parameters()), "lr": cfg.learning_rate * 0.1},
            {"params": list(self.head.parameters()), "lr": cfg.learning_rate},
        ]


def test_the_log_records_the_base_learning_rate_not_the_first_groups(tmp_path: Path) -> None:
    """Before: `lr` was param_groups[0]'s rate, the lowest layer's under layer-wise decay (here 0.001, not 0.01)."""
    train, val = make_data()
    cfg = config(epochs=2, learning_rate=0.01, schedule={"name": "linear"})
    Engine(cfg, "classification", labels=["0", "1"], show_progress=False).fit(_LayerwiseMLP(), train, val, tmp_path)
    entries = read_log(tmp_path / "train_log.jsonl")
    first = next(e for e in entries if e["event"] == "step")
    assert 0.005 < first["lr"] <= 0.01  # the base rate, decayed by at most one step of the linear schedule
    epochs = [e["lr"] for e in entries if e["event"] == "epoch"]
    assert epochs[-1] == 0.0 and epochs[0] > 0.001  # linear decay of the base rate to zero


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, node.end_lineno - node.lineno + 1)  # type: ignore[operator]
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_the_engine_reads_in_one_sitting() -> None:
    """Before: Engine.fit was ~226 lines and engine.py 463 lines."""
    engine = SRC / "training" / "engine.py"
    assert len(engine.read_text(encoding="utf-8").splitlines()) < 450
    for path in (engine, SRC / "training" / "callbacks.py"):
        long = [(name, n) for name, n in _functions(path) if n > 80]
        assert long == [], path


def test_one_fused_optimizer_rule_below_models_and_training() -> None:
    """Before: models/transformer.py had `_fused_ok` and training/schedules.py `_can_fuse`."""
    defined = [
        (str(p.relative_to(SRC)), name)
        for p in sorted(SRC.rglob("*.py"))
        for name, _ in _functions(p)
        if name in ("can_fuse", "_can_fuse", "_fused_ok")
    ]
    assert defined == [("models/fused.py", "can_fuse")]
    from shipyard.models.fused import can_fuse

    assert can_fuse([torch.zeros(2)]) and not can_fuse([]) and not can_fuse([torch.zeros(2, dtype=torch.int64)])
