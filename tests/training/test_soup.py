from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shipyard.config.schema import Job, TrainingConfig
from shipyard.errors import ShipyardError
from shipyard.models.registry import InputSpec, build_model
from shipyard.pipeline import run_job
from shipyard.training.engine import Engine, read_log
from shipyard.training.soup import average_state, fit_soup, ingredient_configs

sys.path.insert(0, str(Path(__file__).parent))
from _train_script import config, make_data


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", {"hidden": [32], "dropout": 0.2}, InputSpec(kind="tabular", n_features=10, n_outputs=2))


def _make_engine(cfg: TrainingConfig) -> Engine:
    return Engine(cfg, "classification", labels=["0", "1"], show_progress=False)


def test_ingredients_differ_in_seed_and_take_learning_rates_in_turn() -> None:
    cfg = config(soup={"ingredients": 3, "learning_rates": [0.01, 0.003]})
    ingredients = ingredient_configs(cfg)
    assert [c.seed for c in ingredients] == [3, 4, 5]
    assert [c.learning_rate for c in ingredients] == [0.01, 0.003, 0.01]
    assert all(c.soup is None for c in ingredients)


def test_average_state_is_the_mean_and_keeps_integer_buffers() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor([5])}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor([7])}
    out = average_state([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0]))
    assert torch.equal(out["n"], torch.tensor([5]))


def test_uniform_soup_is_the_mean_of_its_ingredients(tmp_path: Path) -> None:
    train, val = make_data()
    cfg = config(epochs=3, soup={"ingredients": 3})
    model = _mlp()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fit = fit_soup(_make_engine, model, train, val, tmp_path, cfg, "classification")
    states = [load_file(str(tmp_path / "soup" / f"ingredient-{i}" / "weights.safetensors")) for i in (1, 2, 3)]
    assert not torch.equal(states[0]["body.0.weight"], states[1]["body.0.weight"])  # different seeds, different runs
    for key, value in model.state_dict().items():
        assert torch.allclose(value, sum(s[key] for s in states) / 3, atol=1e-6)
    # every ingredient started from the same weights: ingredient 1 is exactly a plain run with seed 3
    plain = _mlp()
    plain.load_state_dict(start)
    _make_engine(ingredient_configs(cfg)[0]).fit(plain, train, val, tmp_path / "plain")
    assert torch.equal(plain.state_dict()["body.0.weight"], states[0]["body.0.weight"])
    assert fit.soup is not None and fit.soup["chosen"] == [1, 2, 3]
    assert fit.global_step == 3 * 3 * 15 and fit.epochs_run == 9
    # the average of runs that share their start is a working model, about as good as its ingredients
    scores = [r["val_accuracy"] for r in fit.soup["ingredients"]]
    assert _make_engine(cfg).evaluate(model, val)["accuracy"] >= min(scores) - 0.02
    log = read_log(tmp_path / "train_log.jsonl")
    epochs = [e for e in log if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, 10))  # counted on across ingredients
    assert epochs[3]["ingredient"] == "2/3"
    assert log[-1]["event"] == "soup" and log[-1]["chosen"] == "1,2,3"


def test_greedy_soup_starts_from_the_best_ingredient(tmp_path: Path) -> None:
    train, val = make_data()
    # one learning rate far too high makes a bad ingredient that the greedy soup should leave out
    cfg = config(epochs=3, soup={"ingredients": 3, "method": "greedy", "learning_rates": [0.01, 0.01, 50.0]})
    fit = fit_soup(_make_engine, _mlp(), train, val, tmp_path, cfg, "classification")
    assert fit.soup is not None
    scores = {r["ingredient"]: r["val_accuracy"] for r in fit.soup["ingredients"]}
    best = max(scores, key=lambda i: scores[i])
    assert best in fit.soup["chosen"]
    assert 3 not in fit.soup["chosen"] or scores[3] >= min(scores[1], scores[2])
    assert fit.best_value is not None and fit.best_value >= scores[best]


def test_greedy_soup_needs_validation(tmp_path: Path) -> None:
    train, _ = make_data()
    cfg = config(soup={"ingredients": 2, "method": "greedy"})
    with pytest.raises(ShipyardError, match="validation"):
        fit_soup(_make_engine, _mlp(), train, None, tmp_path, cfg, "classification")


def _digits_job() -> Job:
    return Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {"format": "sklearn_digits", "limit": 400},
                "split": {"method": "stratified", "validation": 0.2, "test": 0.2},
            },
            "model": {"type": "mlp", "hidden": [32]},
            "training": {
                "epochs": 3,
                "batch_size": 32,
                "learning_rate": 0.003,
                "checkpoint_every_steps": 4,
                "soup": {"ingredients": 2},
                "num_threads": 1,
            },
        }
    )


def test_soup_run_resumes_without_retraining_finished_ingredients(tmp_path: Path) -> None:
    job = _digits_job()
    full = run_job(job, base_dir=tmp_path, run_dir=tmp_path / "full", show_progress=False)
    assert full.metrics["training"]["soup"]["chosen"] == [1, 2]
    assert full.metrics["test"]["accuracy"] > 0.8
    report = (tmp_path / "full" / "report.html").read_text()
    assert "Model soup" in report and "ingredients 1, 2" in report
    reference = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))

    # a run killed while training ingredient 2: ingredient 1 finished, ingredient 2 has a mid-epoch checkpoint
    killed = tmp_path / "killed"
    run_job(job, base_dir=tmp_path, run_dir=killed, show_progress=False)
    second = killed / "soup" / "ingredient-2"
    (second / "result.json").unlink()
    (second / "weights.safetensors").unlink()
    kept = sorted((second / "checkpoints").glob("ckpt-*.pt"))
    assert len(kept) == 2  # keep_checkpoints: the last one (end of training) and one mid-epoch before it
    kept[-1].unlink()
    (second / "checkpoints" / "latest.json").write_text(json.dumps({"file": kept[0].name}))
    first_done = (killed / "soup" / "ingredient-1" / "result.json").stat().st_mtime_ns
    shutil.rmtree(killed / "model")
    (killed / "metrics.json").unlink()
    resumed = run_job(job, base_dir=tmp_path, run_dir=killed, resume=True, show_progress=False)
    assert (killed / "soup" / "ingredient-1" / "result.json").stat().st_mtime_ns == first_done  # not retrained
    again = load_file(str(killed / "model" / "model.safetensors"))
    for key, value in reference.items():
        assert torch.equal(value, again[key]), key
    assert resumed.metrics["test"]["accuracy"] == full.metrics["test"]["accuracy"]


def test_soup_refuses_differential_privacy(tmp_path: Path) -> None:
    job = _digits_job().model_copy(
        update={"privacy": {"differential_privacy": {"target_epsilon": 8.0, "max_grad_norm": 1.0}}}
    )
    with pytest.raises(ShipyardError, match="soup"):
        run_job(job, base_dir=tmp_path, run_dir=tmp_path / "dp", show_progress=False)
