"""`training.max_time`: a fit stopped by its time limit is evaluated where it stopped, keeps the best weights seen
so far, and resumes exactly; the config, the pipeline and LightGBM honour it too."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import shipyard
from shipyard.config.errors import ConfigError
from shipyard.config.schema import Job, TrainingConfig
from shipyard.models.registry import InputSpec, build_model
from shipyard.training.engine import Engine, read_log
from shipyard.training.time_limit import TimeLimit

sys.path.insert(0, str(Path(__file__).parent))
from _train_script import config, make_data


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", {"hidden": [32]}, InputSpec(kind="tabular", n_features=10, n_outputs=2))


def _stop_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The time limit falls after optimiser step ``step`` (counted over the whole fit)."""
    calls = {"n": 0}

    def after_step(self: TimeLimit, examples: int) -> bool:
        calls["n"] += 1
        self.hit = self.deadline is not None and calls["n"] >= step
        return self.hit

    monkeypatch.setattr(TimeLimit, "after_step", after_step)


def test_a_stop_mid_epoch_keeps_the_best_weights_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = make_data()  # 480 rows: 15 optimiser steps per epoch
    _stop_at_step(monkeypatch, 20)
    cfg = config(epochs=10, max_time="1h", early_stopping={"metric": "accuracy", "patience": 1})
    engine = Engine(cfg, "classification", labels=["0", "1"], show_progress=False)
    model = _mlp()
    result = engine.fit(model, train, val, tmp_path)
    assert result.stopped_at_time and not result.stopped_early and result.global_step == 20
    assert result.summary()["stopped_at_time"] is True
    log = read_log(tmp_path / "train_log.jsonl")
    stop = [e for e in log if e["event"] == "time_limit"]
    assert len(stop) == 1 and stop[0]["epoch"] == 2 and "val_accuracy" in stop[0]
    best = load_file(str(tmp_path / "checkpoints" / "best.safetensors"))
    for key, value in model.state_dict().items():  # the weights kept are the best evaluation's
        assert torch.equal(value, best[key])
    epoch_1 = next(e for e in log if e["event"] == "epoch")["val_accuracy"]
    assert result.best_value == max(epoch_1, stop[0]["val_accuracy"])
    pointer = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())
    assert pointer["state"]["epoch"] == 1 and pointer["state"]["group"] == 5  # still inside epoch 2


def test_a_stopped_fit_resumes_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = make_data()
    whole = _mlp()
    Engine(config(epochs=3), "classification", labels=["0", "1"], show_progress=False).fit(
        whole, train, val, tmp_path / "whole"
    )
    with monkeypatch.context() as patch:
        _stop_at_step(patch, 7)
        first = Engine(config(epochs=3, max_time=3600), "classification", labels=["0", "1"], show_progress=False)
        assert first.fit(_mlp(), train, val, tmp_path / "cut").stopped_at_time
    resumed = _mlp()
    result = Engine(config(epochs=3), "classification", labels=["0", "1"], show_progress=False).fit(
        resumed, train, val, tmp_path / "cut", resume=True
    )
    assert not result.stopped_at_time and result.global_step == 45
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key])


def test_the_limit_keeps_back_one_evaluation() -> None:
    class One:
        world_size = 1

    limit = TimeLimit(time.monotonic() + 5.0, One(), validation_rows=100)
    limit.eval_seconds = 1.0
    assert not limit.after_step(16)
    limit.eval_seconds = 6.0  # one more validation pass would overrun the deadline
    assert limit.after_step(16) and limit.hit
    assert not TimeLimit(None, One(), 100).after_step(16)


def test_max_time_is_a_duration_and_not_for_soups() -> None:
    assert TrainingConfig.model_validate({"max_time": "1.5m"}).max_time == 90.0
    with pytest.raises(ValueError, match="max_time 'soon' is not a duration"):
        TrainingConfig.model_validate({"max_time": "soon"})
    with pytest.raises(ValueError, match="max_time does not apply to a soup"):
        TrainingConfig.model_validate({"max_time": 60, "soup": {"ingredients": 2}})


def _adult_job(data_dir: Path, model: dict[str, Any], training: dict[str, Any]) -> Job:
    source = {"path": str(data_dir / "adult" / "adult.data"), "skip_initial_space": True, "na_values": ["?"]}
    return Job.model_validate(
        {
            "task": "classification",
            "data": {"source": {**source, "limit": 2000}, "target": "Y", "split": {"validation": 0.2, "test": 0.2}},
            "model": model,
            "training": {"seed": 0, "num_threads": 1, **training},
        }
    )


@pytest.mark.parametrize(
    ("model", "training"),
    [
        ({"type": "mlp", "hidden": [64]}, {"epochs": 100000, "batch_size": 8}),
        ({"type": "lightgbm", "n_estimators": 100000, "learning_rate": 0.001, "early_stopping_rounds": 0}, {}),
    ],
    ids=["mlp", "lightgbm"],
)
def test_a_job_past_its_max_time_finishes_with_a_model(
    data_dir: Path, tmp_path: Path, model: dict[str, Any], training: dict[str, Any]
) -> None:
    job = _adult_job(data_dir, model, {**training, "max_time": "4s"})
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = shipyard.run(job, run_dir=tmp_path / "run", show_progress=False)
    assert time.monotonic() - started < 60  # without the limit: hours
    assert result.metrics["training"]["stopped_at_time"] is True
    assert result.metrics["test"]["accuracy"] > 0.7
    assert (tmp_path / "run" / "model").is_dir()


def test_a_bad_max_time_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("task: classification\ndata: {source: {path: x.csv}, target: y}\ntraining: {max_time: -3m}\n")
    with pytest.raises(ConfigError, match="max_time"):
        Job.from_yaml(path)
