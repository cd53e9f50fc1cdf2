"""Early stopping: is this evaluation the best so far (then its weights are saved as ``best.safetensors``), and
has the metric stopped improving for ``patience`` epochs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from shipyard.config.schema import EarlyStoppingConfig
from shipyard.errors import ShipyardError
from shipyard.io import atomic_save_safetensors
from shipyard.training.callbacks import TrainState

log = logging.getLogger(__name__)

LOWER_IS_BETTER = {"loss", "log_loss", "mse", "rmse", "mae", "ece", "expected_calibration_error"}


def metric_value(values: dict[str, Any], name: str, *, where: str) -> float:
    """``values[name]`` as a float; a ShipyardError at ``where`` listing the computed metrics when it is not one."""
    if name not in values or not isinstance(values[name], int | float):
        known = sorted(k for k, v in values.items() if isinstance(v, int | float))
        raise ShipyardError(f"metric `{name}` is not computed; expected one of {', '.join(known)}", where=where)
    return float(values[name])


def update_best(
    es: EarlyStoppingConfig | None,
    val: dict[str, Any],
    state: TrainState,
    model: nn.Module,
    run_dir: Path,
    epoch: int,
    *,
    save: bool,
    judge: bool = True,
) -> None:
    """Record ``val`` in ``state``: a new best saves ``model``'s weights (when ``save``: rank 0); otherwise, when
    ``judge`` (a whole epoch, not the part a time limit left), it counts towards the patience."""
    if es is None:
        return
    value = metric_value(val, es.metric, where="training.early_stopping.metric")
    lower = es.mode == "min" or (es.mode == "auto" and es.metric in LOWER_IS_BETTER)
    better = state.best is None or (value < state.best - es.min_delta if lower else value > state.best + es.min_delta)
    if better:
        state.best, state.best_epoch, state.bad_epochs = value, epoch, 0
        if save:
            atomic_save_safetensors(run_dir / "checkpoints" / "best.safetensors", model.state_dict())
    elif judge:
        state.bad_epochs += 1
        if state.bad_epochs >= es.patience:
            state.stopped_early = True
            log.info("early stopping at epoch %d: %s did not improve for %d epochs", epoch + 1, es.metric, es.patience)
