"""The training engine: one loop for every model family.

Read top to bottom: build the optimiser and schedule, optionally restore a checkpoint, then for each epoch walk
the (seed, epoch)-determined batch order in groups of `gradient_accumulation` micro-batches, step, log,
checkpoint; at each epoch's end evaluate, apply early stopping and checkpoint again. Devices, ranks and the
reduction of metrics belong to `DistContext`; precision to `Precision`; DP-SGD, the weight average, compile and
augmentation to the callbacks of training/callbacks.py, which the loop calls at fixed points.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

import shipyard.training.batching as batching  # the module, not the package (whose __init__ imports this one)
from shipyard.config.schema import AugmentationConfig, TrainingConfig
from shipyard.errors import ShipyardError
from shipyard.training.basic_metrics import MetricsFn, basic_metrics
from shipyard.training.callbacks import Callback, FitContext, TrainState, builtin_callbacks
from shipyard.training.checkpoint import capture_rng, load_latest, rank_rng, restore_rng, save_checkpoint
from shipyard.training.distributed import DistContext
from shipyard.training.early_stopping import LOWER_IS_BETTER as LOWER_IS_BETTER  # re-exported
from shipyard.training.early_stopping import metric_value as metric_value
from shipyard.training.early_stopping import update_best
from shipyard.training.fit_result import FitResult as FitResult  # where the families and the pipeline import it
from shipyard.training.precision import resolve_precision
from shipyard.training.progress import RateWindow, TrainProgress
from shipyard.training.schedules import build_optimizer, build_scheduler
from shipyard.training.time_limit import TimeLimit, deadline_after
from shipyard.training.train_log import JsonlLog, truncate_log
from shipyard.training.train_log import read_log as read_log  # where the pipeline and soups read it

log = logging.getLogger(__name__)


class SplitLike(Protocol):
    inputs: dict[str, np.ndarray]
    target: np.ndarray


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class _Run(FitContext):
    """One fit's working set: the callbacks' view plus what only the loop touches (built by Engine._start)."""

    run_dir: Path
    callbacks: list[Callback]
    lengths: np.ndarray | None
    scheduler: torch.optim.lr_scheduler.LambdaLR = field(init=False)
    scaler: torch.amp.GradScaler = field(init=False)
    train_x: dict[str, torch.Tensor] = field(init=False)
    train_y: torch.Tensor = field(init=False)
    logger: JsonlLog = field(init=False)
    progress: TrainProgress = field(init=False)
    window: RateWindow = field(init=False)  # the log's rates: wall time since the previous line, evaluation included
    limit: TimeLimit = field(init=False)  # training.max_time (or the caller's deadline)


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
        callbacks: Sequence[Callback] = (),
        metrics_fn: MetricsFn | None = None,
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
        self.extra_callbacks = list(callbacks)  # after the configured ones (training/callbacks.py)
        self.metrics_fn: MetricsFn = metrics_fn or basic_metrics
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
        return self.metrics_fn(self.task, target, outputs, self.labels)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        model: nn.Module,
        train: SplitLike,
        validation: SplitLike | None,
        run_dir: Path,
        *,
        resume: bool = False,
        deadline: float | None = None,
    ) -> FitResult:
        """``deadline`` (a ``time.monotonic()`` value) stops the fit like ``training.max_time``, which counts from
        here when no deadline is given."""
        run = self._start(model, train, Path(run_dir), resume)
        history: list[dict[str, Any]] = []
        started = time.perf_counter()
        seen_at_start = run.state.examples_seen
        rows = len(validation.target) if validation is not None else 0
        run.limit = TimeLimit(deadline_after(self.cfg.max_time) if deadline is None else deadline, self.ctx, rows)
        with run.progress:
            while run.state.epoch < self.cfg.epochs and not run.state.stopped_early:
                if not self._train_epoch(run):
                    history.append(self._end_at_time_limit(run, validation))
                    break
                history.append(self._end_epoch(run, validation))
                if run.limit.hit:
                    break
        return self._finish(run, history, time.perf_counter() - started, seen_at_start)

    def _start(self, model: nn.Module, train: SplitLike, run_dir: Path, resume: bool) -> _Run:
        """Optimiser, callbacks (which may wrap the module and optimiser), schedule; restored when resuming."""
        cfg = self.cfg
        seed_everything(cfg.seed)
        model.to(self.device)
        n = len(train.target)
        per_epoch = batching.steps_per_epoch(n, cfg.batch_size, cfg.gradient_accumulation)
        net = self.ctx.wrap(model)
        run = _Run(
            cfg=cfg,
            model=model,
            net=net,
            optimizer=build_optimizer(model, cfg),
            n=n,
            per_epoch=per_epoch,
            total_steps=min(cfg.max_steps or per_epoch * cfg.epochs, per_epoch * cfg.epochs),
            world_size=self.ctx.world_size,
            aug_gen=torch.Generator().manual_seed(cfg.seed + 7),
            state=TrainState(),
            restored_best=False,
            run_dir=run_dir,
            callbacks=self.callbacks(),
            lengths=batching.token_lengths(train.inputs) if cfg.length_bucketing else None,
        )
        for cb in run.callbacks:
            cb.on_fit_start(run)
        run.scheduler = build_scheduler(run.optimizer, cfg, run.total_steps, per_epoch)
        run.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.needs_scaler)
        if resume:
            self._restore(run)
        run.train_x = batching.to_tensors(train.inputs)
        run.train_y = batching._tensor(np.asarray(train.target))
        run.logger = JsonlLog(run_dir / "train_log.jsonl", run.state, enabled=self.ctx.is_main)
        run.progress = TrainProgress(run.total_steps, enabled=self.show_progress, initial=run.state.global_step)
        run.window = RateWindow()
        return run

    def callbacks(self) -> list[Callback]:
        """The configured callbacks (DP-SGD, compile, EMA, augmentation), then the ones passed to the engine."""
        return [
            *builtin_callbacks(self.cfg, privacy=self.privacy, augmentation=self.augmentation),
            *self.extra_callbacks,
        ]

    def _restore(self, run: _Run) -> None:
        payload = load_latest(run.run_dir / "checkpoints")
        run.model.load_state_dict(payload["model"])
        run.optimizer.load_state_dict(payload["optimizer"])
        run.scheduler.load_state_dict(payload["scheduler"])
        run.scaler.load_state_dict(payload["scaler"])
        for cb in run.callbacks:
            if cb.state_key is not None:
                cb.load_state_dict(payload.get(cb.state_key))
        run.state = TrainState(**payload["state"])
        restore_rng(rank_rng(payload, self.ctx.rank, self.ctx.world_size), run.aug_gen)
        if self.ctx.is_main:
            truncate_log(run.run_dir / "train_log.jsonl", run.state.log_lines)
        log.info("resumed at epoch %d, step %d", run.state.epoch, run.state.global_step)

    def _checkpoint(self, run: _Run) -> None:
        # every rank's random streams: under torchrun the ranks draw for different rows
        rngs = self.ctx.gather(capture_rng(run.aug_gen))
        if self.ctx.is_main:
            payload = {
                "model": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict(),
                "state": run.state.as_dict(),
                "rng": rngs[0],
            }
            if len(rngs) > 1:
                payload["rng_by_rank"] = rngs
            for cb in run.callbacks:
                if cb.state_key is not None:
                    payload[cb.state_key] = cb.state_dict()
            save_checkpoint(run.run_dir / "checkpoints", payload, self.cfg.keep_checkpoints)
        self.ctx.barrier()

    def _train_epoch(self, run: _Run) -> bool:
        """The (seed, epoch)-determined batch order in groups of `gradient_accumulation` micro-batches; False when
        the time limit stopped it before the epoch's end."""
        cfg, epoch = self.cfg, run.state.epoch
        batches = batching.epoch_batches(
            run.n, cfg.batch_size, cfg.seed, epoch, run.lengths, min_rows=2 * self.ctx.world_size
        )
        for cb in run.callbacks:
            batches = cb.epoch_batches(run, epoch, batches)
        groups = [batches[i : i + cfg.gradient_accumulation] for i in range(0, len(batches), cfg.gradient_accumulation)]
        run.net.train()
        for gi in range(run.state.group, len(groups)):
            if run.state.global_step >= run.total_steps:
                break
            seen = run.state.examples_seen
            self._train_step(run, groups[gi], gi)
            if run.limit.after_step(run.state.examples_seen - seen) and gi < len(groups) - 1:
                return False
        return True

    def _train_step(self, run: _Run, group: list[torch.Tensor], gi: int) -> None:
        """One optimiser step over a group of micro-batches, then its log line and (maybe) a checkpoint."""
        cfg, state = self.cfg, run.state
        group_loss, group_examples, group_tokens = 0.0, 0, 0
        for mi, micro in enumerate(group):
            if any(cb.skip_micro_batch(run, micro) for cb in run.callbacks):
                continue
            loss, tokens = self._backward(run, group, micro, last=mi == len(group) - 1)
            group_loss += loss * len(micro)
            group_examples += len(micro)
            group_tokens += tokens
        self._optimizer_step(run)
        state.global_step += 1
        state.group = gi + 1
        state.examples_seen += group_examples
        state.loss_sum += group_loss
        state.loss_count += group_examples
        step_loss = group_loss / max(group_examples, 1)
        run.progress.step(step_loss, state.epoch + 1, group_examples, group_tokens)
        run.window.add(group_examples, group_tokens)
        if state.global_step % cfg.log_every_steps == 0 or state.global_step == 1:
            rate, tok_rate = run.window.take()
            entry = {
                "event": "step",
                "epoch": state.epoch + 1,
                "step": state.global_step,
                "loss": step_loss,
                "lr": self._base_lr(run),
                "examples_per_s": rate,
            }
            if tok_rate:
                entry["tokens_per_s"] = tok_rate
            run.logger.write(entry)
        if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
            self._checkpoint(run)

    def _backward(self, run: _Run, group: list[torch.Tensor], micro: torch.Tensor, *, last: bool) -> tuple[float, int]:
        """Forward and backward of this rank's shard of one micro-batch: (its mean loss, its tokens)."""
        idx = self.ctx.shard(micro)
        # each rank's loss is a mean over its shard and DDP averages gradients over ranks: weigh the shard by its
        # size so that the step is the mean over the whole micro-batch
        weight = len(idx) * self.ctx.world_size / sum(len(m) for m in group)
        if len(idx) == 0:  # fewer rows than ranks: join the gradient all-reduce with nothing
            idx, weight = micro[:1], 0.0
        batch = batching.collate(run.train_x, idx, self.device)
        target = run.train_y[idx].to(self.device)
        for cb in run.callbacks:
            batch = cb.on_train_batch(run, batch)
        # under torchrun the gradients are exchanged once per optimiser step, not per micro-batch
        with self.ctx.accumulating(run.net, last=last):
            with self.precision.autocast():
                outputs = run.net(**batch)
                loss = self.loss(outputs, target, training=True)
            if not torch.isfinite(loss):
                raise ShipyardError(
                    f"the training loss became {loss.item()} at epoch {run.state.epoch + 1}, "
                    f"step {run.state.global_step + 1}",
                    where="training",
                    hint="lower training.learning_rate, set training.clip_grad_norm, or check inputs",
                )
            run.scaler.scale(loss * weight).backward()
        return loss.item(), int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0

    def _optimizer_step(self, run: _Run) -> None:
        if self.cfg.clip_grad_norm:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), self.cfg.clip_grad_norm)
        for cb in run.callbacks:
            cb.before_optimizer_step(run)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.optimizer.zero_grad(set_to_none=True)
        run.scheduler.step()
        for cb in run.callbacks:
            cb.after_optimizer_step(run)

    def _base_lr(self, run: _Run) -> float:
        """The schedule's rate for the base learning rate; parameter groups may scale it (layer-wise decay)."""
        return self.cfg.learning_rate * run.scheduler.lr_lambdas[0](run.scheduler.last_epoch)

    def _end_epoch(self, run: _Run, validation: SplitLike | None) -> dict[str, Any]:
        """Evaluate, apply early stopping, checkpoint; returns the epoch's log entry."""
        state, epoch = run.state, run.state.epoch
        entry = {
            "event": "epoch",
            "epoch": epoch + 1,
            "step": state.global_step,
            "train_loss": state.loss_sum / max(state.loss_count, 1),
            "lr": self._base_lr(run),
        }
        self._validate(run, validation, entry, judge=True)
        run.logger.write(entry)
        for cb in run.callbacks:
            cb.on_epoch_end(run, entry)
        state.epoch = epoch + 1
        state.group = 0
        state.loss_sum, state.loss_count = 0.0, 0
        if state.global_step >= run.total_steps:
            state.epoch = self.cfg.epochs
        self._checkpoint(run)
        return entry

    def _end_at_time_limit(self, run: _Run, validation: SplitLike | None) -> dict[str, Any]:
        """Stopped mid-epoch by the time limit: evaluate these weights, keep them if they are the best so far, and
        checkpoint without moving to the next epoch (``--resume`` finishes this one)."""
        state = run.state
        entry: dict[str, Any] = {"event": "time_limit", "epoch": state.epoch + 1, "step": state.global_step}
        self._validate(run, validation, entry, judge=False)
        run.logger.write(entry)
        self._checkpoint(run)
        log.warning(
            "training.max_time reached at epoch %d, step %d of %d: stopped with the best weights so far",
            state.epoch + 1,
            state.global_step,
            run.total_steps,
        )
        return entry

    def _validate(self, run: _Run, validation: SplitLike | None, entry: dict[str, Any], *, judge: bool) -> None:
        """Score ``validation`` (under the callbacks' evaluation weights) into ``entry`` and record it for early
        stopping; a part of an epoch (``judge`` False) may be the best so far but never counts against the
        patience."""
        if validation is None or not len(validation.target):
            return
        with contextlib.ExitStack() as weights:
            for cb in run.callbacks:
                weights.enter_context(cb.evaluation_weights(run))
            with run.limit.timing_evaluation():
                val = self.evaluate(run.model, validation)
            entry.update({f"val_{k}": v for k, v in val.items() if isinstance(v, int | float)})
            run.progress.note(val)
            update_best(
                self.cfg.early_stopping, val, run.state, run.model, run.run_dir, run.state.epoch,
                save=self.ctx.is_main, judge=judge,
            )  # fmt: skip

    def _finish(self, run: _Run, history: list[dict[str, Any]], seconds: float, seen_at_start: int) -> FitResult:
        state, es = run.state, self.cfg.early_stopping
        best_file = run.run_dir / "checkpoints" / "best.safetensors"
        if es is not None and es.restore_best and best_file.is_file():
            run.model.load_state_dict(load_file(str(best_file), device=str(self.device)))
            run.restored_best = True
            log.info("restored the best weights (epoch %d, %s=%.4f)", state.best_epoch + 1, es.metric, state.best)
        extras: dict[str, Any] = {}
        for cb in run.callbacks:
            extras.update(cb.on_fit_end(run))
        return FitResult(
            epochs_run=state.epoch,
            global_step=state.global_step,
            # without early stopping no epoch is judged best: the weights kept are the last epoch's
            best_epoch=state.best_epoch + 1 if state.best_epoch >= 0 else state.epoch,
            best_value=state.best,
            stopped_early=state.stopped_early,
            stopped_at_time=run.limit.hit,
            history=history,
            precision=self.precision.name,
            seconds=seconds,
            examples_per_second=(state.examples_seen - seen_at_start) / max(seconds, 1e-9),
            **extras,
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


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
