"""The model registry: each family registers a builder (and the input kinds it takes) under a type name.

The engine never imports a family directly; it asks the registry for a module built from the job's parameters and
the shapes the data layer reports. Each family's parameter class is plain data in ``shipyard.config.models``
(the job schema validates ``model:`` against it); a family registers that class with its builder.

The registry holds the table only and imports no family: ``shipyard/models/__init__.py`` imports the built-in
families, which register themselves here. Python runs that ``__init__`` before any ``shipyard.models.*`` module,
so whoever can import the registry finds every built-in family in it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from shipyard.config.errors import validate_section
from shipyard.errors import ShipyardError
from shipyard.spec import InputSpec  # re-exported: older imports name it here

Builder = Callable[[Any, InputSpec], nn.Module]


@dataclass(frozen=True)
class Family:
    """A family's builder and what the pipeline asks of the data and the trainer for it (fitting.py).

    ``trainer``: ``"engine"`` (the torch engine) or ``"trees"`` (LightGBM's own boosting, training/trees.py).
    ``cleaning``: ``data.cleaning`` settings the family needs (trees: categories as ordinal codes).
    ``text_encoder``: the encoder a text family takes: ``"pretrained"`` (its model's own tokenizer) or
    ``"vocabulary"`` (one learnt from the training split); the pipeline makes it (models and data are independent).
    ``data_params(preprocessor)``: build parameters that come from the fitted data (a learnt vocabulary's size),
    recorded in the artifact as ``artifact_params``."""

    name: str
    params: type[BaseModel]
    build: Builder
    input_kinds: tuple[str, ...]
    trainer: str = "engine"
    cleaning: dict[str, Any] | None = None
    text_encoder: str | None = None
    data_params: Callable[[Any], dict[str, Any]] | None = None


_FAMILIES: dict[str, Family] = {}


def register(
    name: str, params: type[BaseModel], input_kinds: tuple[str, ...], **options: Any
) -> Callable[[Builder], Builder]:
    """Decorate a builder; ``options`` are :class:`Family`'s optional fields (trainer, cleaning, ...)."""

    def decorate(build: Builder) -> Builder:
        _FAMILIES[name] = Family(name, params, build, input_kinds, **options)
        return build

    return decorate


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        close = difflib.get_close_matches(name, list(_FAMILIES), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known types: {', '.join(sorted(_FAMILIES))}"
        raise ValueError(f"unknown model type `{name}`; {hint}")
    return _FAMILIES[name]


def families() -> list[str]:
    return sorted(_FAMILIES)


def validate_params(name: str, params: dict[str, Any], *, where: str = "model") -> BaseModel:
    """``params`` checked against the family's parameter class (a ConfigError, which is also a ValueError,
    naming each bad key under ``where``)."""
    return validate_section(get_family(name).params, params, where=where)


def build_model(name: str, params: dict[str, Any], spec: InputSpec) -> nn.Module:
    family = get_family(name)
    if spec.kind not in family.input_kinds:
        raise ShipyardError(
            f"model type `{name}` takes {'/'.join(family.input_kinds)} inputs, but the data is {spec.kind}",
            where="model.type",
            hint="declare the text column in the job: `data.features: [{name: <column>, type: text}]` (a column of "
            "numbers is read as numeric unless declared text)"
            if family.input_kinds == ("text",)
            else None,
        )
    return family.build(validate_params(name, params), spec)


class TargetScaled(nn.Module):
    """Regression wrapper: the inner model learns a standardised target; outputs come back in real units.

    Keeping the scale inside the module means every backend (torch, ONNX, the server) returns real units.
    """

    def __init__(self, inner: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.inner(**inputs) * self.std + self.mean


def build_for_task(
    name: str,
    params: dict[str, Any],
    spec: InputSpec,
    target_scale: tuple[float, float] | None = None,
    artifact_dir: Any = None,
) -> nn.Module:
    """Build a family's module for a task. ``artifact_dir`` lets families that keep files beside their weights
    (a transformer's tokenizer and config) rebuild from the artifact instead of their original source."""
    family = get_family(name)
    if artifact_dir is not None and "artifact_dir" in family.params.model_fields:
        params = {**params, "artifact_dir": str(artifact_dir)}
    model = build_model(name, params, spec)
    if spec.task == "regression" and target_scale is not None:
        return TargetScaled(model, *target_scale)
    return model
