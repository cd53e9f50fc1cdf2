"""The job's ``optimize:`` section (also the options of ``shipyard optimize``); run by shipyard.optimize."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

METHODS = ("onnx", "int8", "prune", "distill")


class OptimizeConfig(BaseModel):
    """The ``optimize:`` section of a job (or the options of ``shipyard optimize``)."""

    model_config = ConfigDict(extra="forbid")

    methods: list[Literal["onnx", "int8", "prune", "distill"]] = Field(
        default_factory=lambda: ["onnx", "int8"], min_length=1
    )
    sparsity: float = Field(default=0.5, gt=0.0, lt=1.0)  # pruning: fraction of weights / units removed
    structured: bool = False
    prune_finetune_epochs: int = Field(default=1, ge=0)
    finetune_lr_scale: float = Field(default=0.2, gt=0.0, le=1.0)  # fine-tunes start from trained weights
    student: dict[str, Any] = Field(default_factory=dict)  # layers (transformer), hidden (mlp), channels (cnn)
    distill_epochs: int | None = Field(default=None, ge=1)  # None: the run's own epoch count
    temperature: float = Field(default=2.0, gt=0.0)
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)  # weight of the soft (teacher) term
    calibration_samples: int = Field(default=256, ge=1)
    latency_repeats: int = Field(default=100, ge=5)
    threads: int | None = Field(default=None, ge=1)  # None: min(4, CPU cores)
    # auto: fused (transformers), then dynamo, then torchscript; see shipyard.optimize.onnx_export
    exporter: Literal["auto", "dynamo", "torchscript", "fused"] = "auto"
    parity_tolerance: float = Field(default=1e-4, gt=0.0)  # fp32 export: largest |logit difference|
    min_int8_agreement: float = Field(default=0.9, ge=0.0, le=1.0)  # int8: top-1 agreement below -> failed row
