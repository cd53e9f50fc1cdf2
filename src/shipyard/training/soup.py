"""Model soups (Wortsman et al., 2022): one model from several fine-tuning runs that share their starting weights.

Every ingredient starts from the same weights (the pretrained encoder and the same freshly initialised head) and
differs only in its seed (data order, dropout) and optionally its learning rate. Runs that start together stay in
one basin of the loss, so the average of their weights is itself a good model, and usually a better one than any
ingredient: it keeps most of an ensemble's gain at the inference cost of a single model.

``uniform`` averages every ingredient. ``greedy`` ranks the ingredients by validation score and adds each in turn,
keeping it only when the soup's validation score does not drop; it needs a validation split and trusts it, so with a
few hundred validation rows the uniform soup is the safer choice.

Each ingredient trains in ``soup/ingredient-<i>/`` with its own checkpoints and log. A finished ingredient leaves
``weights.safetensors`` and ``result.json`` there and is never retrained; a killed run resumes inside the
ingredient it was training, bit for bit, like any other run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from shipyard.config.schema import SoupConfig, TrainingConfig
from shipyard.errors import ShipyardError
from shipyard.io import atomic_save_safetensors, atomic_write_json, atomic_write_text
from shipyard.training.checkpoint import LATEST
from shipyard.training.engine import LOWER_IS_BETTER, Engine, FitResult, SplitLike, metric_value, read_log

log = logging.getLogger(__name__)
SOUP_DIR = "soup"


def ingredient_configs(cfg: TrainingConfig) -> list[TrainingConfig]:
    """The training configuration of each ingredient: seed + i and the i-th learning rate (in turn)."""
    soup = cfg.soup
    assert soup is not None
    rates = soup.learning_rates or [cfg.learning_rate]
    return [
        cfg.with_changes("training", seed=cfg.seed + i, learning_rate=rates[i % len(rates)], soup=None)
        for i in range(soup.ingredients)
    ]


def soup_metric(soup: SoupConfig, cfg: TrainingConfig, task: str) -> tuple[str, bool]:
    """The validation metric ranking ingredients and whether lower is better."""
    if soup.metric:
        name = soup.metric
    elif cfg.early_stopping is not None:
        name = cfg.early_stopping.metric
    else:
        name = "accuracy" if task == "classification" else "loss"
    return name, name in LOWER_IS_BETTER


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (in float32, cast back); other tensors from the first."""
    out: dict[str, torch.Tensor] = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            total = torch.zeros_like(first, dtype=torch.float32)
            for state in states:
                total += state[key].float()
            out[key] = (total / len(states)).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


def fit_soup(
    make_engine: Callable[[TrainingConfig], Engine],
    model: nn.Module,
    train: SplitLike,
    validation: SplitLike | None,
    run_dir: Path,
    cfg: TrainingConfig,
    task: str,
    *,
    resume: bool = False,
) -> FitResult:
    """Train every ingredient from ``model``'s current weights, leave the soup's weights in ``model``."""
    soup = cfg.soup
    assert soup is not None
    has_validation = validation is not None and len(validation.target) > 0
    if soup.method == "greedy" and not has_validation:
        raise ShipyardError(
            "a greedy soup ranks ingredients on the validation split, and this run has none",
            where="training.soup.method",
            hint="set data.split.validation (or a validation_source), or use method: uniform",
        )
    metric, lower = soup_metric(soup, cfg, task)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    folder = Path(run_dir) / SOUP_DIR
    results: list[dict[str, Any]] = []
    for i, icfg in enumerate(ingredient_configs(cfg), start=1):
        where = folder / f"ingredient-{i}"
        done = where / "result.json"
        if done.is_file() and (where / "weights.safetensors").is_file():
            results.append(json.loads(done.read_text(encoding="utf-8")))
            log.info("soup ingredient %d/%d already trained", i, soup.ingredients)
            continue
        results.append(
            _train_ingredient(
                make_engine, model, start, (train, validation), where, icfg, i, soup.ingredients, metric, resume
            )
        )

    states = [load_file(str(folder / f"ingredient-{r['ingredient']}" / "weights.safetensors")) for r in results]
    chosen = list(range(len(states)))
    engine = make_engine(cfg.with_changes("training", soup=None))
    if soup.method == "greedy":
        chosen = _greedy(engine, model, states, results, validation, metric, lower)
    model.load_state_dict(average_state([states[i] for i in chosen]))
    summary = {
        "event": "soup",
        "method": soup.method,
        "ingredients": len(states),
        "chosen": ",".join(str(results[i]["ingredient"]) for i in chosen),
    }
    if has_validation:
        summary[f"val_{metric}"] = _score(engine, model, validation, metric)
        for r in results:
            log.info("ingredient %d: validation %s %.4f", r["ingredient"], metric, r[f"val_{metric}"])
        log.info("soup of %s: validation %s %.4f", summary["chosen"], metric, summary[f"val_{metric}"])
    if engine.ctx.is_main:
        _write_combined_log(Path(run_dir), soup.ingredients, summary)
    seconds = sum(r["seconds"] for r in results)
    picked = [results[i]["ingredient"] for i in chosen]
    return FitResult(
        epochs_run=sum(r["epochs"] for r in results),
        global_step=sum(r["steps"] for r in results),
        best_epoch=0,
        best_value=summary.get(f"val_{metric}"),
        stopped_early=False,
        history=[],
        precision=engine.precision.name,
        seconds=seconds,
        examples_per_second=sum(r["examples_per_second"] * r["seconds"] for r in results) / max(seconds, 1e-9),
        soup={"method": soup.method, "metric": metric, "chosen": picked, "ingredients": results},
    )


def _score(engine: Engine, model: nn.Module, validation: SplitLike | None, metric: str) -> float:
    assert validation is not None
    return metric_value(engine.evaluate(model, validation), metric, where="training.soup.metric")


def _greedy(
    engine: Engine,
    model: nn.Module,
    states: list[dict[str, torch.Tensor]],
    results: list[dict[str, Any]],
    validation: SplitLike | None,
    metric: str,
    lower: bool,
) -> list[int]:
    key = f"val_{metric}"
    order = sorted(range(len(states)), key=lambda i: results[i][key], reverse=not lower)
    chosen = [order[0]]
    best = results[order[0]][key]
    for i in order[1:]:
        model.load_state_dict(average_state([states[j] for j in [*chosen, i]]))
        value = _score(engine, model, validation, metric)
        if (value <= best) if lower else (value >= best):
            chosen.append(i)
            best = value
    return sorted(chosen)


def _write_combined_log(run_dir: Path, count: int, summary: dict[str, Any]) -> None:
    """The run's train_log.jsonl: every ingredient's entries one after another (steps and epochs counted on), then
    the soup's own line, so the report's learning curves cover the whole run."""
    lines: list[str] = []
    step0 = epoch0 = 0
    for i in range(1, count + 1):
        entries = read_log(run_dir / SOUP_DIR / f"ingredient-{i}" / "train_log.jsonl")
        last_step = last_epoch = 0
        for entry in entries:
            entry = dict(entry)
            last_step = max(last_step, int(entry.get("step", 0)))
            last_epoch = max(last_epoch, int(entry.get("epoch", 0)))
            entry["step"] = step0 + int(entry.get("step", 0))
            entry["epoch"] = epoch0 + int(entry.get("epoch", 0))
            entry["ingredient"] = f"{i}/{count}"
            lines.append(json.dumps(entry))
        step0 += last_step
        epoch0 += last_epoch
    lines.append(json.dumps(summary))
    atomic_write_text(run_dir / "train_log.jsonl", "".join(line + "\n" for line in lines))


def _train_ingredient(
    make_engine: Callable[[TrainingConfig], Engine],
    model: nn.Module,
    start: dict[str, torch.Tensor],
    data: tuple[SplitLike, SplitLike | None],
    where: Path,
    icfg: TrainingConfig,
    i: int,
    of: int,
    metric: str,
    resume: bool,
) -> dict[str, Any]:
    """Train ingredient ``i`` from the ``start`` weights into ``where`` (its weights, then result.json last)."""
    train, validation = data
    has_validation = validation is not None and len(validation.target) > 0
    done = where / "result.json"
    model.load_state_dict(start)
    again = resume and (where / "checkpoints" / LATEST).is_file()
    log.info("soup ingredient %d/%d: seed %d, learning rate %g", i, of, icfg.seed, icfg.learning_rate)
    engine = make_engine(icfg)
    fit = engine.fit(model, train, validation, where, resume=again)
    score = _score(engine, model, validation, metric) if has_validation else None
    result = {
        "ingredient": i,
        "seed": icfg.seed,
        "learning_rate": icfg.learning_rate,
        "epochs": fit.epochs_run,
        "steps": fit.global_step,
        "best_epoch": fit.best_epoch,
        "seconds": round(fit.seconds, 2),
        "examples_per_second": round(fit.examples_per_second, 1),
        f"val_{metric}": score,
    }
    if engine.ctx.is_main:  # under torchrun every rank holds the same weights; one writes them
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_save_safetensors(where / "weights.safetensors", weights)
        atomic_write_json(done, result)  # last: its presence means the ingredient is finished
    engine.ctx.barrier()
    return result
