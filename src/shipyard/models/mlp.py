"""Multi-layer perceptron: Linear -> [BatchNorm] -> activation -> [Dropout], repeated, then a linear head."""

from __future__ import annotations

import torch
from torch import nn

from shipyard.config.models import MLPParams
from shipyard.models.registry import register
from shipyard.spec import InputSpec

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLP(nn.Module):
    def __init__(self, n_in: int, n_out: int, params: MLPParams) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for size in params.hidden:
            layers.append(nn.Linear(width, size))
            if params.batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[params.activation]())
            if params.dropout:
                layers.append(nn.Dropout(params.dropout))
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1)))


@register("mlp", MLPParams, input_kinds=("tabular", "image"))
def build(params: MLPParams, spec: InputSpec) -> nn.Module:
    n_in = spec.n_features if spec.kind == "tabular" else int(torch.tensor(spec.image_shape).prod())
    return MLP(n_in, spec.n_outputs, params)
