"""Knowledge distillation: a smaller student learns the teacher's soft labels.

The student is the teacher's family made smaller: a transformer keeps the teacher's first N encoder layers (with
their weights, a far better start than random ones), an MLP or CNN is rebuilt narrower from fresh weights.

Training uses the normal `Engine` with a custom loss. The engine hands the loss whatever target array the split
holds, so the training split's target packs ``[teacher outputs..., hard label]`` in one float array; the
validation split keeps its plain labels, which the same loss recognises (1-D target) and scores with plain
cross-entropy, so the engine's metrics and early stopping work unchanged. Classification mixes
``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, label)``; regression mixes the squared
error to the teacher's value and to the true value (on the standardised scale).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shipyard.errors import ShipyardError
from shipyard.models.registry import build_for_task, validate_params

log = logging.getLogger(__name__)


@dataclass
class StudentPlan:
    model: nn.Module
    params: dict[str, Any]  # the family parameters saved with the student's artifact
    description: dict[str, Any]
    teacher_parameters: int
    student_parameters: int


def _count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def plan_student(
    teacher: nn.Module, model_type: str, params: dict[str, Any], spec: Any, target_scale: Any, student: dict[str, Any]
) -> StudentPlan:
    """Build the (untrained) student; a student that is not smaller than its teacher is an error."""
    student = dict(student)
    if model_type == "transformer":
        model, new_params, desc = _transformer_student(teacher, params, student)
    elif model_type in ("mlp", "cnn"):
        new_params = {**params, **_default_student(model_type, params), **student}
        validate_params(model_type, new_params, where="optimize.student")  # a ConfigError naming the bad key
        try:
            model = build_for_task(model_type, new_params, spec, target_scale)
        except ValueError as exc:
            raise ShipyardError(f"invalid student parameters: {exc}", where="optimize.student") from None
        desc = {k: new_params[k] for k in ("hidden", "channels", "head_hidden") if k in new_params}
    else:
        raise ShipyardError(
            f"distillation needs a family with a width or depth to shrink; `{model_type}` has none",
            where="optimize.methods",
        )
    t, s = _count(teacher), _count(model)
    if s >= t:
        raise ShipyardError(
            f"the student ({s:,} parameters, {desc}) is not smaller than its teacher ({t:,} parameters)",
            where="optimize.student",
            hint="choose fewer layers, fewer hidden units or fewer channels",
        )
    return StudentPlan(model, new_params, desc, t, s)


def _default_student(model_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """Half the width by default: a clear size win that usually keeps most of the accuracy."""
    full = validate_params(model_type, params).model_dump()
    if model_type == "mlp":
        return {"hidden": [max(1, h // 2) for h in full["hidden"]]}
    return {"channels": [max(1, c // 2) for c in full["channels"]]}


def _transformer_student(
    teacher: nn.Module, params: dict[str, Any], student: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    unknown = set(student) - {"layers"}
    if unknown:
        raise ShipyardError(
            f"unknown student key(s) for a transformer: {', '.join(sorted(unknown))}",
            where="optimize.student",
            hint="a transformer student takes `layers: N` (the teacher's first N layers)",
        )
    stack = getattr(getattr(getattr(teacher, "encoder", None), "encoder", None), "layer", None)
    if stack is None:
        raise ShipyardError("distillation supports BERT-style encoders (encoder.encoder.layer)", where="optimize")
    n_teacher = len(stack)
    layers = int(student.get("layers", max(1, n_teacher // 2)))
    if layers < 1:
        raise ShipyardError("student layers must be at least 1", where="optimize.student.layers")
    if layers > n_teacher:
        raise ShipyardError(
            f"the student has {layers} layers, more than its teacher's {n_teacher}",
            where="optimize.student.layers",
        )
    model = copy.deepcopy(teacher)
    model.encoder.encoder.layer = nn.ModuleList(list(model.encoder.encoder.layer)[:layers])
    model.encoder.config.num_hidden_layers = layers
    if hasattr(model, "n_layers"):
        model.n_layers = layers
    new_params = dict(params)
    # the student trains every weight: a frozen copy of the teacher's lower layers could not adapt to losing
    # the layers above them
    if "mode" in new_params or getattr(getattr(model, "params_cfg", None), "mode", "full") != "full":
        new_params["mode"] = "full"
        new_params.pop("freeze_layers", None)
    if hasattr(model, "params_cfg"):
        model.params_cfg = model.params_cfg.model_copy(update={"mode": "full", "freeze_layers": 0})
    for p in model.parameters():
        p.requires_grad_(True)
    return model, new_params, {"layers": layers, "teacher_layers": n_teacher}


def distillation_loss(
    task: str, temperature: float, alpha: float, value_scale: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The engine's loss: packed (N, K+1) training targets get the distillation mix; 1-D targets plain loss."""
    t = float(temperature)

    def loss(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        outputs = outputs.float()
        if task == "classification":
            if target.ndim == 1:
                return F.cross_entropy(outputs, target.long())
            soft, hard = target[:, :-1].float(), target[:, -1].long()
            kl = F.kl_div(
                F.log_softmax(outputs / t, dim=-1),
                F.log_softmax(soft / t, dim=-1),
                log_target=True,
                reduction="batchmean",
            )
            # T^2 keeps the soft term's gradient size independent of the temperature (Hinton et al.)
            return alpha * (t * t) * kl + (1.0 - alpha) * F.cross_entropy(outputs, hard)
        pred = outputs.reshape(-1) / value_scale
        if target.ndim == 1:
            return F.mse_loss(pred, target.float().reshape(-1) / value_scale)
        teacher_v, true_v = target[:, 0].float() / value_scale, target[:, 1].float() / value_scale
        return alpha * F.mse_loss(pred, teacher_v) + (1.0 - alpha) * F.mse_loss(pred, true_v)

    return loss


@dataclass
class PackedSplit:
    """A training split whose target carries the teacher's outputs beside the true label."""

    inputs: dict[str, np.ndarray]
    target: np.ndarray


def pack_targets(teacher_outputs: np.ndarray, target: np.ndarray) -> np.ndarray:
    soft = teacher_outputs.reshape(len(target), -1).astype(np.float32)
    return np.concatenate([soft, target.astype(np.float32).reshape(-1, 1)], axis=1)
