"""The optimisation methods, each behind one small interface, and the registry the runner dispatches through.

A method is a function ``method(bench, row, work) -> Path``: it builds its model from the run on ``bench`` (the
runner), writes it as an artifact folder under the scratch folder ``work`` and returns that folder; it fills
``row`` (variant, parity, notes ...) as it goes and raises `MethodFailed` when its result must not ship. The
runner then publishes the folder and measures it like every other row.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

import shipyard.optimize.prune as prune  # the module, not the package (whose __init__ imports this one)
from shipyard.config.optimize import METHODS, OptimizeConfig
from shipyard.data.prepare import SplitArrays
from shipyard.optimize.context import RunContext, make_engine, subsample, validation_or_none
from shipyard.optimize.distill import StudentPlan, distillation_loss, pack_targets
from shipyard.optimize.folders import onnx_folder, torch_folder
from shipyard.optimize.measure import (
    agreement,
    count_nonzero,
    count_parameters,
    max_abs_diff,
    ort_runner,
    ort_session,
    run_batched,
)
from shipyard.optimize.quantize import quantize_dynamic_int8, quantize_static_int8
from shipyard.training.engine import seed_everything

__all__ = ["REGISTRY", "Bench", "Method", "MethodFailed"]


class MethodFailed(Exception):
    """A method ran but its result must not ship (failed parity, too little agreement)."""


class Bench(Protocol):
    """What a method may use of the run being optimised (`shipyard.optimize.runner.Runner` provides it)."""

    ctx: RunContext
    cfg: OptimizeConfig
    threads: int
    eval: Any  # the SplitArrays every row is measured on
    reference: np.ndarray  # the original's outputs on it
    value_scale: float
    plan: StudentPlan | None  # distill: the student, checked before any method ran

    def export(self, model: nn.Module, path: Path, row: dict[str, Any]) -> dict[str, Any]:
        """Export ``model`` to ONNX at ``path`` and return its parity check (``passed``: within tolerance)."""
        ...

    def fp32_export(self, row: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """The original model's fp32 export and its parity check, shared by every method that needs it."""
        ...


Method = Callable[[Bench, dict[str, Any], Path], Path]


def parity_message(check: dict[str, Any]) -> str:
    agree = check.get("top1_agreement")
    return (
        f"parity check failed: max |difference| {check['max_abs_diff_scaled']:.3g} "
        f"(tolerance {check.get('tolerance', 0):.0e})" + (f", top-1 agreement {agree:.4%}" if agree is not None else "")
    )


def _not_for_trees(ctx: RunContext, what: str, why: str) -> None:
    if ctx.artifact.backend == "lightgbm":
        raise MethodFailed(f"{what} does not apply to a tree model: {why}; `onnx` exports it, `distill` teaches a net")


# ---------------------------------------------------------------------------------------------------- onnx, int8
def onnx_method(bench: Bench, row: dict[str, Any], work: Path) -> Path:
    """The fp32 model as ONNX (ONNX Runtime backend), shipped only if it matches torch within tolerance."""
    onnx_path = work / "model.onnx"
    fp32, check = bench.fp32_export(row)
    shutil.copy2(fp32, onnx_path)
    row["parity"] = check
    row["variant"] = "fp32 ONNX Runtime"
    if not check["passed"]:
        raise MethodFailed(parity_message(check))
    return onnx_folder(bench.ctx, work, onnx_path, {"method": "onnx", "parity": check, "exporter": row["exporter"]})


def int8_method(bench: Bench, row: dict[str, Any], work: Path) -> Path:
    """ONNX Runtime int8: static QDQ for CNNs (calibrated on training rows), dynamic for the other models."""
    ctx, cfg = bench.ctx, bench.cfg
    _not_for_trees(ctx, "int8 quantisation", "its thresholds are compared, not multiplied")
    fp32, check = bench.fp32_export(row)
    if not check["passed"]:
        row["parity"] = check
        raise MethodFailed("the fp32 export to quantise failed its parity check: " + parity_message(check))
    out = work / "model_int8.onnx"
    if ctx.model_type == "cnn":
        calib = subsample(ctx.split("train").inputs, cfg.calibration_samples, seed=1)
        info = quantize_static_int8(fp32, out, work, calib)
    else:
        info = quantize_dynamic_int8(fp32, out, work)
    row["variant"] = f"int8 {info['scheme']}"
    outputs = run_batched(ort_runner(ort_session(out, bench.threads)), bench.eval.inputs)
    agree = agreement(ctx.task, bench.reference, outputs)
    row["parity"] = {
        "max_abs_diff": max_abs_diff(bench.reference, outputs),
        "top1_agreement": agree,
        "fp32_export": check,
        "min_agreement": cfg.min_int8_agreement,
        "passed": agree is None or agree >= cfg.min_int8_agreement,
    }
    if not row["parity"]["passed"]:
        raise MethodFailed(f"int8 model agrees with the original on only {agree:.1%} of rows")
    final = work / "model.onnx"
    out.replace(final)
    return onnx_folder(ctx, work, final, {"method": "int8", **info, "parity": row["parity"]})


# ---------------------------------------------------------------------------------------------------- prune
def _describe_cut(info: dict[str, Any]) -> str:
    if info["unit"] == "heads+ffn":
        return (
            f"heads {info['heads_before']} -> {info['heads_after']}, FFN neurons {info['ffn_before']} -> "
            f"{info['ffn_after']}"
        )
    return f"{info['before']} -> {info['after']}"


def _fine_tune(bench: Bench, model: nn.Module, work: Path) -> None:
    """A short fine-tune at a reduced learning rate (``prune_finetune_epochs``; none when it is 0)."""
    ctx, cfg = bench.ctx, bench.cfg
    if cfg.prune_finetune_epochs:
        engine = make_engine(ctx, epochs=cfg.prune_finetune_epochs, lr_scale=cfg.finetune_lr_scale)
        engine.fit(model, ctx.split("train"), validation_or_none(ctx), work / "finetune")


def _prune_structured(bench: Bench, row: dict[str, Any], work: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Whole neurons / channels / heads removed, so the model really is smaller; returns it and its params."""
    ctx, cfg = bench.ctx, bench.cfg
    model = ctx.teacher()
    before = count_parameters(model)
    row["variant"] = f"structured {cfg.sparsity:.0%}"
    model, params, info = prune.structured_prune(
        model, ctx.model_type, ctx.model_params, ctx.spec, ctx.target_scale, cfg.sparsity
    )
    _fine_tune(bench, model, work)
    model = model.eval()
    after = count_parameters(model)
    row["structure"] = info
    row["parameters"] = after
    row["parameter_reduction"] = round(1.0 - after / before, 4)
    row["notes"].append(f"{info['unit']} removed: {_describe_cut(info)}")
    return model, params


def _prune_unstructured(bench: Bench, row: dict[str, Any], work: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Global magnitude pruning: the smallest weights set to zero, the architecture unchanged."""
    ctx, cfg = bench.ctx, bench.cfg
    model = ctx.teacher()
    row["variant"] = f"unstructured {cfg.sparsity:.0%}"
    prune.apply_global_magnitude(model, cfg.sparsity)
    _fine_tune(bench, model, work)
    prune.make_permanent(model)
    model = model.eval()
    row["parameters"] = count_parameters(model)
    row["nonzero_parameters"] = count_nonzero(model)
    row["notes"].append(
        "unstructured sparsity: zeros are stored and multiplied like any weight, so dense kernels give "
        "no speed-up and the file is not smaller (it would compress well)"
    )
    row["sparsity"] = round(prune.weight_sparsity(model), 4)
    return model, ctx.model_params


def prune_method(bench: Bench, row: dict[str, Any], work: Path) -> Path:
    """Pruning (``structured`` or global magnitude), each followed by a short fine-tune."""
    ctx, cfg = bench.ctx, bench.cfg
    _not_for_trees(ctx, "pruning", "a tree model has no weights to prune (fewer trees: lower n_estimators)")
    if cfg.structured:
        model, params = _prune_structured(bench, row, work)
    else:
        model, params = _prune_unstructured(bench, row, work)
    row["finetune_epochs"] = cfg.prune_finetune_epochs
    if ctx.model_type == "transformer" and cfg.structured:
        # per-layer head counts cannot be described by the encoder config a torch artifact rebuilds from,
        # so the pruned transformer ships as ONNX (shapes live in the graph)
        onnx_path = work / "model.onnx"
        check = bench.export(model, onnx_path, row)
        row["parity"] = check
        if not check["passed"]:
            raise MethodFailed(parity_message(check))
        row["notes"].append("saved as ONNX: pruned head counts are not expressible in the encoder config")
        return onnx_folder(ctx, work, onnx_path, {"method": "prune", "structure": row.get("structure")})
    info = {
        "method": "prune",
        "variant": row["variant"],
        "sparsity": row.get("sparsity"),
        "structure": row.get("structure"),
    }
    return torch_folder(ctx, work, model, params, info)


# ---------------------------------------------------------------------------------------------------- distill
def distill_method(bench: Bench, row: dict[str, Any], work: Path) -> Path:
    """A smaller student (planned before any method ran) trained on the teacher's soft labels."""
    ctx, cfg, plan = bench.ctx, bench.cfg, bench.plan
    assert plan is not None  # the runner plans the student whenever distill is requested
    train = ctx.split("train")
    soft = make_engine(ctx, epochs=1).predict(ctx.teacher(), train.inputs)
    packed = SplitArrays(inputs=train.inputs, target=pack_targets(soft, train.target), frame=train.frame)
    loss = distillation_loss(ctx.task, cfg.temperature, cfg.alpha, bench.value_scale)
    # no augmentation: the teacher's soft labels describe the rows as they are, not augmented copies
    engine = make_engine(
        ctx,
        epochs=cfg.distill_epochs or ctx.job.training.epochs,
        loss_fn=loss,
        augment=False,
        early_stopping=True,
    )
    seed_everything(ctx.job.training.seed)
    student = plan.model
    engine.fit(student, packed, validation_or_none(ctx), work / "train")
    student = student.eval()
    row["variant"] = f"student {plan.description}"
    row["student"] = plan.description
    row["parameters"] = plan.student_parameters
    row["teacher_parameters"] = plan.teacher_parameters
    row["notes"].append(f"T={cfg.temperature}, alpha={cfg.alpha}")
    return torch_folder(ctx, work, student, plan.params, {"method": "distill", "student": plan.description})


REGISTRY: dict[str, Method] = {
    "onnx": onnx_method,
    "int8": int8_method,
    "prune": prune_method,
    "distill": distill_method,
}
# the config schema (shipyard.config.optimize) names the methods a job may ask for: each must have its function
assert set(REGISTRY) == set(METHODS), "shipyard.config.optimize.METHODS and optimize.methods.REGISTRY differ"
