"""What DP-SGD, the weight average (EMA), ``torch.compile`` and image augmentation add to ``Engine.fit``.

The engine's loop is the same for every run; each feature is a :class:`Callback` that the loop calls at fixed
points, in list order (in the manner of Lightning's callbacks):

- ``on_fit_start``: after the optimiser exists and before the schedule is built; may wrap ``fit.net`` (the module
  the training forward runs through) and ``fit.optimizer`` (DP-SGD, compile);
- ``epoch_batches``: may replace an epoch's batch order (DP-SGD's Poisson batches);
- ``skip_micro_batch`` / ``on_train_batch``: per micro-batch (DP-SGD's empty batches, augmentation);
- ``before_optimizer_step`` / ``after_optimizer_step``: around each optimiser step (DP noise seed, EMA update);
- ``evaluation_weights``: the weights validation judges (EMA's average);
- ``on_epoch_end``: after each epoch's evaluation, with its log entry (a search's pruning reads it and may stop);
- ``on_fit_end``: after the best weights are restored; returns fields of the ``FitResult`` (DP's accounting);
- ``state_key`` / ``state_dict`` / ``load_state_dict``: the callback's part of every checkpoint, for exact resume.

A callback keeps only state it can rebuild exactly on resume, so a resumed run stays bit-identical.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from shipyard.config.schema import AugmentationConfig, TrainingConfig
from shipyard.data.augment import augment_images
from shipyard.errors import ShipyardError
from shipyard.training.ema import WeightEMA
from shipyard.training.privacy import DPConfig, DPSession


@dataclass
class TrainState:
    """Where a fit is; saved in every checkpoint."""

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
class FitContext:
    """The fit in progress, as callbacks see it. ``net`` is what the training forward runs through (DDP, Opacus
    or compile wrappers around ``model``); checkpoints and evaluation use ``model`` itself."""

    cfg: TrainingConfig
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    n: int  # training rows
    per_epoch: int  # optimiser steps per epoch
    total_steps: int
    world_size: int
    aug_gen: torch.Generator  # the fit's augmentation stream (checkpointed with the other random states)
    state: TrainState
    restored_best: bool  # set before on_fit_end: early stopping put the best epoch's weights back


class Callback:
    """Every hook is a no-op here; a callback overrides the ones it needs."""

    state_key: str | None = None  # the checkpoint key of state_dict(), None: nothing to save

    def on_fit_start(self, fit: FitContext) -> None:
        pass

    def epoch_batches(self, fit: FitContext, epoch: int, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        return batches

    def skip_micro_batch(self, fit: FitContext, micro: torch.Tensor) -> bool:
        return False

    def on_train_batch(self, fit: FitContext, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return batch

    def before_optimizer_step(self, fit: FitContext) -> None:
        pass

    def after_optimizer_step(self, fit: FitContext) -> None:
        pass

    def evaluation_weights(self, fit: FitContext) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def on_fit_end(self, fit: FitContext) -> dict[str, Any]:
        return {}

    def on_epoch_end(self, fit: FitContext, entry: dict[str, Any]) -> None:
        """After each epoch's evaluation (``entry``: its log line); may stop the fit (``fit.state.stopped_early``)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        pass


class DPSGD(Callback):
    """DP-SGD (training/privacy.py): Opacus' per-example clipping and noise, Poisson batches, epsilon accounting.

    Nothing to checkpoint: the batches of an epoch and the noise of a step are pure functions of the seed."""

    def __init__(self, dp: DPConfig) -> None:
        self.dp = dp
        self.session: DPSession | None = None

    def on_fit_start(self, fit: FitContext) -> None:
        self.session = DPSession(
            self.dp, fit.cfg, n=fit.n, total_steps=fit.total_steps, per_epoch=fit.per_epoch, world_size=fit.world_size
        )
        fit.net, fit.optimizer = self.session.wrap(fit.model, fit.optimizer)

    def epoch_batches(self, fit: FitContext, epoch: int, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        assert self.session is not None
        return self.session.epoch_batches(epoch)

    def skip_micro_batch(self, fit: FitContext, micro: torch.Tensor) -> bool:
        if len(micro):
            return False
        assert self.session is not None
        self.session.empty_batch()  # an empty Poisson batch: the step still happens, noise only
        return True

    def before_optimizer_step(self, fit: FitContext) -> None:
        assert self.session is not None
        self.session.before_step(fit.state.global_step)  # this step's noise seeded by (seed, step)

    def on_fit_end(self, fit: FitContext) -> dict[str, Any]:
        assert self.session is not None
        self.session.close()  # remove Opacus' hooks; account for the steps actually taken
        return {"privacy": self.session.report(fit.state.global_step)}


class Compile(Callback):
    """``torch.compile`` of the training forward only: checkpoints and evaluation use the plain module, so saved
    state dicts carry no compiler prefixes and resume works with or without compile."""

    def __init__(self, *, with_privacy: bool = False) -> None:
        self.with_privacy = with_privacy

    def on_fit_start(self, fit: FitContext) -> None:
        if self.with_privacy:
            raise ShipyardError(
                "training.compile cannot be combined with differential privacy (Opacus hooks every layer)",
                where="training.compile",
                hint="set training.compile: false",
            )
        fit.net = torch.compile(fit.net, dynamic=True)


class EMA(Callback):
    """An average of the weights (training/ema.py): updated after every step, judged by validation, and left in
    the model at the end unless early stopping restored its best epoch."""

    state_key = "ema"

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.ema: WeightEMA | None = None

    def on_fit_start(self, fit: FitContext) -> None:
        self.ema = WeightEMA(fit.model, self.decay)

    def after_optimizer_step(self, fit: FitContext) -> None:
        assert self.ema is not None
        self.ema.update(fit.model)

    def evaluation_weights(self, fit: FitContext) -> AbstractContextManager[None]:
        assert self.ema is not None
        return self.ema.applied(fit.model)  # the averaged weights are judged (and kept as the best)

    def on_fit_end(self, fit: FitContext) -> dict[str, Any]:
        if not fit.restored_best:
            assert self.ema is not None
            self.ema.copy_to(fit.model)
        return {}

    def state_dict(self) -> dict[str, Any]:
        assert self.ema is not None
        return self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:
            raise ShipyardError(
                "the checkpoint has no weight average but training.ema is set",
                where="training.ema",
                hint="resume with the configuration the run started with",
            )
        assert self.ema is not None
        self.ema.load_state_dict(state)


class Augmentation(Callback):
    """Random image augmentation of each training batch, drawn from the fit's checkpointed generator."""

    def __init__(self, cfg: AugmentationConfig) -> None:
        self.cfg = cfg

    def on_train_batch(self, fit: FitContext, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "x" in batch:
            batch["x"] = augment_images(batch["x"], self.cfg, fit.aug_gen)
        return batch


def builtin_callbacks(
    cfg: TrainingConfig, *, privacy: DPConfig | None, augmentation: AugmentationConfig | None
) -> list[Callback]:
    """The callbacks a training config asks for, in the order they wrap the module: DP-SGD, then compile."""
    out: list[Callback] = []
    if privacy is not None:
        out.append(DPSGD(privacy))
    if cfg.compile:
        out.append(Compile(with_privacy=privacy is not None))
    if cfg.ema:
        out.append(EMA(cfg.ema))
    if augmentation is not None:
        out.append(Augmentation(augmentation))
    return out
