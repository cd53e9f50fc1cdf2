"""The training engine: one loop for every model family.

Read top to bottom: build the optimiser and schedule, optionally restore a checkpoint, then for each epoch walk
the (seed, epoch)-determined batch order in groups of `gradient_accumulation` micro-batches, step, log,
checkpoint; at each epoch's end evaluate, apply early stopping and checkpoint again. Devices, ranks and the
reduction of metrics belong to `DistContext`; precision to `Precision`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shipyard.config.schema import AugmentationConfig, TrainingConfig
from shipyard.errors import ShipyardError
from shipyard.io import atomic_save_safetensors, atomic_write_text
from shipyard.training import batching
from shipyard.training.checkpoint import capture_rng, load_latest, restore_rng, save_checkpoint
from shipyard.training.distributed import DistContext
from shipyard.training.ema import WeightEMA
from shipyard.training.precision import resolve_precision
from shipyard.training.progress import RateWindow, TrainProgress
from shipyard.training.schedules import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

LOWER_IS_BETTER = {"loss", "log_loss", "mse", "rmse", "mae", "ece", "expected_calibration_error"}


class SplitLike(Protocol):
    inputs: dict[str, np.ndarray]
    target: np.ndarray


@dataclass
class TrainState:
    epoch: int = 0
    group: int = 0  # optimiser steps done in the current epoch
    global_step: int = 0
    examples_seen: int = 0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped_early: bool = False
    log_lines: int = 0
    loss_sum: float = 0.0  # running train loss of the current epoch
    loss_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FitResult:
    epochs_run: int
    global_step: int
    best_epoch: int
    best_value: float | None
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"
    seconds: float = 0.0
    examples_per_second: float = 0.0
    privacy: dict[str, Any] | None = None  # DP-SGD accounting (training/privacy.py), None without DP
    soup: dict[str, Any] | None = None  # a model soup's ingredients and choice (training/soup.py)


def metric_value(values: dict[str, Any], name: str, *, where: str) -> float:
    """``values[name]`` as a float; a ShipyardError at ``where`` listing the computed metrics when it is not one."""
    if name not in values or not isinstance(values[name], int | float):
        known = sorted(k for k, v in values.items() if isinstance(v, int | float))
        raise ShipyardError(f"metric `{name}` is not computed; expected one of {', '.join(known)}", where=where)
    return float(values[name])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Engine:
    """Trains and evaluates any registered model on in-memory arrays."""

    def __init__(
        self,
        cfg: TrainingConfig,
        task: str,
        *,
        labels: list[str] | None = None,
        augmentation: AugmentationConfig | None = None,
        target_scale: tuple[float, float] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        ctx: DistContext | None = None,
        show_progress: bool = True,
        privacy: Any = None,
    ) -> None:
        self.cfg = cfg
        self.task = task
        self.labels = labels
        self.augmentation = augmentation if augmentation and augmentation.enabled else None
        self.target_scale = target_scale
        self.custom_loss = loss_fn
        self.ctx = ctx or DistContext.create(cfg.device)
        self.device = self.ctx.device
        self.precision = resolve_precision(cfg.precision, self.device)
        self.show_progress = show_progress and self.ctx.is_main
        self.privacy = privacy  # a training.privacy.DPConfig: DP-SGD (Opacus) instead of plain SGD
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)

    # ------------------------------------------------------------------ loss and metrics
    def loss(self, outputs: torch.Tensor, target: torch.Tensor, *, training: bool = False) -> torch.Tensor:
        if self.custom_loss is not None:
            return self.custom_loss(outputs, target)
        if self.task == "classification":
            smoothing = self.cfg.label_smoothing if training else 0.0
            return F.cross_entropy(outputs.float(), target, label_smoothing=smoothing)
        scale = self.target_scale[1] if self.target_scale else 1.0
        return F.mse_loss(outputs.float().reshape(-1) / scale, target.float().reshape(-1) / scale)

    def metrics(self, target: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        from shipyard.evaluation.metrics import compute_metrics

        return compute_metrics(self.task, target, outputs, self.labels)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        model: nn.Module,
        train: SplitLike,
        validation: SplitLike | None,
        run_dir: Path,
        *,
        resume: bool = False,
    ) -> FitResult:
        cfg = self.cfg
        run_dir = Path(run_dir)
        ckpt_dir = run_dir / "checkpoints"
        seed_everything(cfg.seed)
        model.to(self.device)
        net = self.ctx.wrap(model)
        optimizer = build_optimizer(model, cfg)
        n = len(train.target)
        lengths = batching.token_lengths(train.inputs) if cfg.length_bucketing else None
        per_epoch = batching.steps_per_epoch(n, cfg.batch_size, cfg.gradient_accumulation)
        total_steps = min(cfg.max_steps or per_epoch * cfg.epochs, per_epoch * cfg.epochs)
        dp = None
        if self.privacy is not None:  # DP-SGD hook (training/privacy.py): per-example clipping + noise
            from shipyard.training.privacy import DPSession

            dp = DPSession(
                self.privacy, cfg, n=n, total_steps=total_steps, per_epoch=per_epoch, world_size=self.ctx.world_size
            )
            net, optimizer = dp.wrap(model, optimizer)
        if cfg.compile:
            if dp is not None:
                raise ShipyardError(
                    "training.compile cannot be combined with differential privacy (Opacus hooks every layer)",
                    where="training.compile",
                    hint="set training.compile: false",
                )
            # only the training forward is compiled; checkpoints and evaluation use the plain module, so saved
            # state dicts carry no compiler prefixes and resume works with or without compile
            net = torch.compile(net, dynamic=True)
        scheduler = build_scheduler(optimizer, cfg, total_steps, per_epoch)
        ema = WeightEMA(model, cfg.ema) if cfg.ema else None
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.needs_scaler)
        aug_gen = torch.Generator().manual_seed(cfg.seed + 7)
        state = TrainState()
        if resume:
            payload = load_latest(ckpt_dir)
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            scaler.load_state_dict(payload["scaler"])
            if ema is not None:
                if "ema" not in payload:
                    raise ShipyardError(
                        "the checkpoint has no weight average but training.ema is set",
                        where="training.ema",
                        hint="resume with the configuration the run started with",
                    )
                ema.load_state_dict(payload["ema"])
            state = TrainState(**payload["state"])
            restore_rng(self._rank_rng(payload), aug_gen)
            if self.ctx.is_main:
                _truncate_log(run_dir / "train_log.jsonl", state.log_lines)
            log.info("resumed at epoch %d, step %d", state.epoch, state.global_step)
        train_t = batching.to_tensors(train.inputs)
        train_y = batching._tensor(np.asarray(train.target))
        logger = _JsonlLog(run_dir / "train_log.jsonl", state, enabled=self.ctx.is_main)

        def checkpoint() -> None:
            # every rank's random streams: under torchrun the ranks draw for different rows
            rngs = self.ctx.gather(capture_rng(aug_gen))
            if self.ctx.is_main:
                payload = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "state": state.as_dict(),
                    "rng": rngs[0],
                }
                if len(rngs) > 1:
                    payload["rng_by_rank"] = rngs
                if ema is not None:
                    payload["ema"] = ema.state_dict()
                save_checkpoint(ckpt_dir, payload, cfg.keep_checkpoints)
            self.ctx.barrier()

        history: list[dict[str, Any]] = []
        started = time.perf_counter()
        seen_at_start = state.examples_seen
        progress = TrainProgress(total_steps, enabled=self.show_progress, initial=state.global_step)
        window = RateWindow()  # the log's rates: wall time since the previous line, evaluation included
        with progress:
            while state.epoch < cfg.epochs and not state.stopped_early:
                epoch = state.epoch
                batches = batching.epoch_batches(
                    n, cfg.batch_size, cfg.seed, epoch, lengths, min_rows=2 * self.ctx.world_size
                )
                if dp is not None:  # DP: Poisson-sampled batches, a pure function of (seed, epoch)
                    batches = dp.epoch_batches(epoch)
                epoch_groups = [
                    batches[i : i + cfg.gradient_accumulation]
                    for i in range(0, len(batches), cfg.gradient_accumulation)
                ]
                net.train()
                for gi in range(state.group, len(epoch_groups)):
                    if state.global_step >= total_steps:
                        break
                    group = epoch_groups[gi]
                    group_loss, group_examples, group_tokens = 0.0, 0, 0
                    for mi, micro in enumerate(group):
                        if dp is not None and len(micro) == 0:  # DP: an empty Poisson batch, noise-only step
                            dp.empty_batch()
                            continue
                        idx = self.ctx.shard(micro)
                        # each rank's loss is a mean over its shard and DDP averages gradients over ranks: weigh
                        # the shard by its size so that the step is the mean over the whole micro-batch
                        weight = len(idx) * self.ctx.world_size / sum(len(m) for m in group)
                        if len(idx) == 0:  # fewer rows than ranks: join the gradient all-reduce with nothing
                            idx, weight = micro[:1], 0.0
                        batch = batching.collate(train_t, idx, self.device)
                        target = train_y[idx].to(self.device)
                        if self.augmentation is not None and "x" in batch:
                            from shipyard.data.augment import augment_images

                            batch["x"] = augment_images(batch["x"], self.augmentation, aug_gen)
                        # under torchrun the gradients are exchanged once per optimiser step, not per micro-batch
                        with self.ctx.accumulating(net, last=mi == len(group) - 1):
                            with self.precision.autocast():
                                outputs = net(**batch)
                                loss = self.loss(outputs, target, training=True)
                            if not torch.isfinite(loss):
                                raise ShipyardError(
                                    f"the training loss became {loss.item()} at epoch {epoch + 1}, "
                                    f"step {state.global_step + 1}",
                                    where="training",
                                    hint="lower training.learning_rate, set training.clip_grad_norm, or check inputs",
                                )
                            scaler.scale(loss * weight).backward()
                        group_loss += loss.item() * len(micro)
                        group_examples += len(micro)
                        if "attention_mask" in batch:
                            group_tokens += int(batch["attention_mask"].sum())
                    if cfg.clip_grad_norm:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                    if dp is not None:
                        dp.before_step(state.global_step)  # DP: this step's noise seeded by (seed, step)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                    if ema is not None:
                        ema.update(model)
                    state.global_step += 1
                    state.group = gi + 1
                    state.examples_seen += group_examples
                    state.loss_sum += group_loss
                    state.loss_count += group_examples
                    step_loss = group_loss / max(group_examples, 1)
                    progress.step(step_loss, epoch + 1, group_examples, group_tokens)
                    window.add(group_examples, group_tokens)
                    if state.global_step % cfg.log_every_steps == 0 or state.global_step == 1:
                        rate, tok_rate = window.take()
                        entry = {
                            "event": "step",
                            "epoch": epoch + 1,
                            "step": state.global_step,
                            "loss": step_loss,
                            "lr": optimizer.param_groups[0]["lr"],
                            "examples_per_s": rate,
                        }
                        if tok_rate:
                            entry["tokens_per_s"] = tok_rate
                        logger.write(entry)
                    if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
                        checkpoint()
                # ---- end of epoch: evaluate, early stopping, checkpoint
                entry = {
                    "event": "epoch",
                    "epoch": epoch + 1,
                    "step": state.global_step,
                    "train_loss": state.loss_sum / max(state.loss_count, 1),
                    "lr": optimizer.param_groups[0]["lr"],
                }
                if validation is not None and len(validation.target):
                    # with an EMA, the averaged weights are the ones judged (and kept as the best)
                    with ema.applied(model) if ema is not None else contextlib.nullcontext():
                        val = self.evaluate(model, validation)
                        entry.update({f"val_{k}": v for k, v in val.items() if isinstance(v, int | float)})
                        progress.note(val)
                        self._early_stopping(val, state, model, run_dir, epoch)
                history.append(entry)
                logger.write(entry)
                state.epoch = epoch + 1
                state.group = 0
                state.loss_sum, state.loss_count = 0.0, 0
                if state.global_step >= total_steps:
                    state.epoch = cfg.epochs
                checkpoint()

        privacy_report = None
        if dp is not None:  # DP: remove Opacus' hooks, account for the steps actually taken
            dp.close()
            privacy_report = dp.report(state.global_step)
        es = cfg.early_stopping
        best_file = run_dir / "checkpoints" / "best.safetensors"
        if es is not None and es.restore_best and best_file.is_file():
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(best_file), device=str(self.device)))
            log.info("restored the best weights (epoch %d, %s=%.4f)", state.best_epoch + 1, es.metric, state.best)
        elif ema is not None:
            ema.copy_to(model)
        seconds = time.perf_counter() - started
        return FitResult(
            epochs_run=state.epoch,
            global_step=state.global_step,
            # without early stopping no epoch is judged best: the weights kept are the last epoch's
            best_epoch=state.best_epoch + 1 if state.best_epoch >= 0 else state.epoch,
            best_value=state.best,
            stopped_early=state.stopped_early,
            history=history,
            precision=self.precision.name,
            seconds=seconds,
            examples_per_second=(state.examples_seen - seen_at_start) / max(seconds, 1e-9),
            privacy=privacy_report,
        )

    def _rank_rng(self, payload: dict[str, Any]) -> dict[str, Any]:
        saved = payload.get("rng_by_rank") or [payload["rng"]]
        if len(saved) != self.ctx.world_size:
            log.warning(
                "the checkpoint was written by %d process(es) and is resumed by %d: every rank restarts from rank "
                "0's random state, so the run goes on but will not match an uninterrupted one bit for bit",
                len(saved),
                self.ctx.world_size,
            )
            return saved[0]
        return saved[self.ctx.rank]

    def _early_stopping(
        self, val: dict[str, Any], state: TrainState, model: nn.Module, run_dir: Path, epoch: int
    ) -> None:
        es = self.cfg.early_stopping
        if es is None:
            return
        value = metric_value(val, es.metric, where="training.early_stopping.metric")
        lower = es.mode == "min" or (es.mode == "auto" and es.metric in LOWER_IS_BETTER)
        better = state.best is None or (
            value < state.best - es.min_delta if lower else value > state.best + es.min_delta
        )
        if better:
            state.best, state.best_epoch, state.bad_epochs = value, epoch, 0
            if self.ctx.is_main:
                atomic_save_safetensors(run_dir / "checkpoints" / "best.safetensors", model.state_dict())
        else:
            state.bad_epochs += 1
            if state.bad_epochs >= es.patience:
                state.stopped_early = True
                log.info(
                    "early stopping at epoch %d: %s did not improve for %d epochs",
                    epoch + 1,
                    es.metric,
                    es.patience,
                )

    # ------------------------------------------------------------------ inference
    def predict(self, model: nn.Module, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Raw outputs (logits or values) in row order."""
        model.to(self.device).eval()
        tensors = batching.to_tensors(inputs)
        n = len(next(iter(inputs.values())))
        size = self.cfg.eval_batch_size or max(self.cfg.batch_size * 2, 64)
        order = batching.eval_batches(n, size, batching.token_lengths(inputs))
        out: np.ndarray | None = None
        with torch.inference_mode(), self.precision.autocast():
            for idx in order:
                res = model(**batching.collate(tensors, idx, self.device)).float().cpu().numpy()
                if out is None:
                    out = np.empty((n, *res.shape[1:]), dtype=np.float32)
                out[idx.numpy()] = res
        assert out is not None
        return out

    def evaluate(self, model: nn.Module, split: SplitLike) -> dict[str, Any]:
        outputs = self.predict(model, split.inputs)
        with torch.inference_mode():
            loss = float(self.loss(torch.from_numpy(outputs), batching._tensor(np.asarray(split.target))))
        metrics = self.metrics(split.target, outputs)
        metrics["loss"] = loss  # under torchrun every rank scores the whole split: nothing to reduce
        return metrics


class _JsonlLog:
    def __init__(self, path: Path, state: TrainState, enabled: bool) -> None:
        self.path = path
        self.state = state
        self.enabled = enabled
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        entry = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in entry.items()}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        self.state.log_lines += 1


def _truncate_log(path: Path, lines: int) -> None:
    if not path.is_file():
        return
    kept = path.read_text(encoding="utf-8").splitlines()[:lines]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
