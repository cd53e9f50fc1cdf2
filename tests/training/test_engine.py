from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from shipyard.config.schema import TrainingConfig
from shipyard.errors import ShipyardError
from shipyard.models.registry import InputSpec, build_model
from shipyard.training.engine import Engine, read_log

sys.path.insert(0, str(Path(__file__).parent))
from _train_script import Split, config, kill_mid_second_epoch, make_data

SCRIPT = Path(__file__).parent / "_train_script.py"


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", {"hidden": [32]}, InputSpec(kind="tabular", n_features=10, n_outputs=2))


def test_engine_learns_and_logs(tmp_path: Path) -> None:
    train, val = make_data()
    engine = Engine(
        config(epochs=6, checkpoint_every_steps=0), "classification", labels=["0", "1"], show_progress=False
    )
    model = _mlp()
    result = engine.fit(model, train, val, tmp_path)
    metrics = engine.evaluate(model, val)
    assert metrics["accuracy"] > 0.8
    log = read_log(tmp_path / "train_log.jsonl")
    epochs = [e for e in log if e["event"] == "epoch"]
    assert len(epochs) == 6 and "val_accuracy" in epochs[-1]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert result.global_step == 6 * 15  # 480 rows / 16 = 30 batches, 2 per optimiser step
    assert (tmp_path / "checkpoints" / "latest.json").is_file()


def test_same_seed_same_weights(tmp_path: Path) -> None:
    train, val = make_data()
    weights = []
    for run in ("a", "b"):
        model = _mlp()
        Engine(config(epochs=2), "classification", labels=["0", "1"], show_progress=False).fit(
            model, train, val, tmp_path / run
        )
        weights.append(model.state_dict())
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key])


def test_early_stopping_restores_best(tmp_path: Path) -> None:
    train, val = make_data()
    cfg = config(epochs=30, learning_rate=0.05, early_stopping={"metric": "loss", "patience": 2})
    engine = Engine(cfg, "classification", labels=["0", "1"], show_progress=False)
    model = _mlp()
    result = engine.fit(model, train, val, tmp_path)
    assert result.stopped_early and result.epochs_run < 30
    best = load_file(str(tmp_path / "checkpoints" / "best.safetensors"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, best[key])
    assert engine.evaluate(model, val)["loss"] == pytest.approx(result.best_value, rel=1e-5)


def test_nan_loss_names_the_step(tmp_path: Path) -> None:
    train, val = make_data()
    bad = Split({"x": train.inputs["x"].copy()}, train.target)
    bad.inputs["x"][5, 0] = np.nan
    engine = Engine(config(epochs=1, gradient_accumulation=1), "classification", labels=["0", "1"], show_progress=False)
    with pytest.raises(ShipyardError, match=r"loss became nan at epoch 1, step \d+"):
        engine.fit(_mlp(), bad, val, tmp_path)


def test_regression_with_target_scale(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (1000 * x[:, 0] + 5000).astype(np.float32)
    tr, va = Split({"x": x[:300]}, y[:300]), Split({"x": x[300:]}, y[300:])
    from shipyard.models.registry import build_for_task

    spec = InputSpec(kind="tabular", n_features=3, n_outputs=1, task="regression")
    model = build_for_task("linear", {}, spec, (float(y[:300].mean()), float(y[:300].std())))
    engine = Engine(
        config(epochs=30, learning_rate=0.05, gradient_accumulation=1),
        "regression",
        target_scale=(float(y.mean()), float(y.std())),
        show_progress=False,
    )
    engine.fit(model, tr, va, tmp_path)
    assert engine.evaluate(model, va)["r2"] > 0.99


def test_precision_falls_back_with_message(caplog: pytest.LogCaptureFixture) -> None:
    from shipyard.training.precision import resolve_precision

    with caplog.at_level("WARNING"):
        p = resolve_precision("fp16", torch.device("cpu"))
    assert p.name == "fp32" and "fp16" in caplog.text


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run([sys.executable, str(SCRIPT), str(full), "fresh"], check=True, env=env, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(killed), "fresh", "0.01"], env=env)
    kill_mid_second_epoch(killed, lambda: (proc.send_signal(signal.SIGKILL), proc.wait()))
    assert not (killed / "final.safetensors").exists()
    subprocess.run([sys.executable, str(SCRIPT), str(killed), "resume"], check=True, env=env, timeout=300)

    a = load_file(str(full / "final.safetensors"))
    b = load_file(str(killed / "final.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log_a = [json.dumps(e) for e in read_log(full / "train_log.jsonl") if e["event"] == "epoch"]
    log_b = [json.dumps(e) for e in read_log(killed / "train_log.jsonl") if e["event"] == "epoch"]
    strip = [{k: v for k, v in json.loads(x).items() if k != "examples_per_s"} for x in log_a]
    assert strip == [{k: v for k, v in json.loads(x).items() if k != "examples_per_s"} for x in log_b]


def test_training_config_validation() -> None:
    with pytest.raises(ValueError):
        TrainingConfig.model_validate({"batch_size": 0})


def test_compiled_training_matches_eager(tmp_path: Path) -> None:
    """training.compile changes how the forward runs, not what it computes: same data, same seed, close weights,
    and the saved state dict has the plain module's keys (no compiler prefix), so resume and export still work."""
    train, val = make_data()
    weights = {}
    for mode in (False, True):
        model = _mlp()
        Engine(config(epochs=1, compile=mode), "classification", labels=["0", "1"], show_progress=False).fit(
            model, train, val, tmp_path / str(mode)
        )
        weights[mode] = model.state_dict()
    assert weights[True].keys() == weights[False].keys()
    for key in weights[False]:
        torch.testing.assert_close(weights[True][key], weights[False][key], rtol=1e-4, atol=1e-5)


def test_weight_ema_follows_the_formula() -> None:
    from shipyard.training.ema import WeightEMA

    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    ema = WeightEMA(layer, decay=0.5)
    expected = torch.zeros_like(layer.weight)
    for step, value in enumerate((1.0, 2.0, 3.0), start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        ema.update(layer)
        d = min(0.5, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * value
    torch.testing.assert_close(ema.shadow["weight"], expected)
    with ema.applied(layer):
        torch.testing.assert_close(layer.weight.detach(), expected)
    assert torch.all(layer.weight == 3.0)  # the training weights come back after the block


def test_ema_weights_are_the_ones_evaluated_and_kept(tmp_path: Path) -> None:
    train, val = make_data()
    plain, averaged = _mlp(), _mlp()
    Engine(config(epochs=2), "classification", labels=["0", "1"], show_progress=False).fit(
        plain, train, val, tmp_path / "plain"
    )
    engine = Engine(config(epochs=2, ema=0.9), "classification", labels=["0", "1"], show_progress=False)
    engine.fit(averaged, train, val, tmp_path / "ema")
    # same data order and updates, so the only difference is the average that was kept
    pairs = zip(plain.state_dict().values(), averaged.state_dict().values(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)
    logged = [e for e in read_log(tmp_path / "ema" / "train_log.jsonl") if e["event"] == "epoch"][-1]
    assert logged["val_accuracy"] == pytest.approx(engine.evaluate(averaged, val)["accuracy"])
    ckpt = torch.load(sorted((tmp_path / "ema" / "checkpoints").glob("ckpt-*.pt"))[-1], weights_only=True)
    assert ckpt["ema"]["updates"] == 2 * 15


def test_label_smoothing_shapes_the_training_loss_only() -> None:
    engine = Engine(config(label_smoothing=0.2), "classification", labels=["0", "1"], show_progress=False)
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5]])
    target = torch.tensor([0, 1])
    logp = torch.log_softmax(logits, dim=1)
    smoothed = -(0.9 * logp[[0, 1], [0, 1]] + 0.1 * logp[[0, 1], [1, 0]]).mean()  # 0.2 spread over 2 classes
    assert torch.allclose(engine.loss(logits, target, training=True), smoothed)
    assert torch.allclose(engine.loss(logits, target), -logp[[0, 1], [0, 1]].mean())  # evaluation: plain


def test_label_smoothing_is_refused_for_regression() -> None:
    from pydantic import ValidationError

    from shipyard.config.schema import Job

    with pytest.raises(ValidationError, match="classification only"):
        Job.model_validate(
            {
                "task": "regression",
                "data": {"source": {"format": "sklearn_digits"}},
                "model": {"type": "linear"},
                "training": {"label_smoothing": 0.1},
            }
        )
