"""Linear and logistic regression: one affine layer over the encoded features."""

from __future__ import annotations

import torch
from torch import nn

from shipyard.config.models import LinearParams
from shipyard.models.registry import register
from shipyard.spec import InputSpec


class LinearModel(nn.Module):
    def __init__(self, n_features: int, n_outputs: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


@register("linear", LinearParams, input_kinds=("tabular", "image"))
def build(params: LinearParams, spec: InputSpec) -> nn.Module:
    n_in = spec.n_features if spec.kind == "tabular" else int(torch.tensor(spec.image_shape).prod())
    return LinearModel(n_in, spec.n_outputs, bias=params.bias)
