"""Recommenders train through the same engine as every other model: ``Engine.fit`` with the model's own loss.

The engine already takes any inputs dict and a ``loss_fn``; the only addition a recommender needs is BPR's
sampled negatives, a :class:`NegativeSampler` callback that adds a ``neg`` column to every training batch. It
draws from the engine's augmentation generator, which every checkpoint saves, so a resumed run samples the same
negatives as an uninterrupted one. Negatives that are positives of the user are drawn again, up to ten times
(only the clashing ones, so it costs little; on a sparse matrix one redraw leaves almost none, and the rare
survivor only adds noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shipyard.config.schema import TrainingConfig
from shipyard.training.callbacks import Callback, FitContext
from shipyard.training.engine import Engine, FitResult


@dataclass
class Split:
    """The engine's view of a split: model inputs and targets."""

    inputs: dict[str, np.ndarray]
    target: np.ndarray


class NegativeSampler(Callback):
    """Adds ``neg``: items drawn uniformly among those the batch's user has not interacted with."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int) -> None:
        self.n_items = n_items
        self.positives = torch.as_tensor(np.unique(np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64)))

    def _is_positive(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        key = user * self.n_items + item
        pos = torch.searchsorted(self.positives, key).clamp(max=len(self.positives) - 1)
        return self.positives[pos] == key

    def on_train_batch(self, fit: FitContext, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        user = batch["user"].cpu()
        neg = torch.randint(0, self.n_items, user.shape, generator=fit.aug_gen)
        for _ in range(10):
            clash = self._is_positive(user, neg)
            if not clash.any():
                break
            neg[clash] = torch.randint(0, self.n_items, (int(clash.sum()),), generator=fit.aug_gen)
        return {**batch, "neg": neg.to(batch["user"].device)}


def fit_recommender(
    model: nn.Module,
    train: Split,
    cfg: TrainingConfig,
    run_dir: Path,
    *,
    validation: Split | None = None,
    callbacks: tuple[Callback, ...] = (),
    resume: bool = False,
    show_progress: bool = False,
    task: str = "regression",
) -> FitResult:
    """Train ``model`` (which has a ``loss(outputs, target)``) with the engine; checkpoints in ``run_dir``."""
    engine = Engine(cfg, task, loss_fn=model.loss, callbacks=callbacks, show_progress=show_progress)
    return engine.fit(model, train, validation, Path(run_dir), resume=resume)


def training_config(**overrides: Any) -> TrainingConfig:
    """A TrainingConfig validated like a job's (a typo is an error, not a silent default)."""
    return TrainingConfig.model_validate(overrides)
