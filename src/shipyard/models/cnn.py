"""A plain convolutional network: blocks of (conv -> [batch norm] -> ReLU) x convs_per_block -> max-pool
-> [dropout], then global average or flatten, and a small MLP head."""

from __future__ import annotations

import torch
from torch import nn

from shipyard.config.models import CNNParams
from shipyard.models.registry import register
from shipyard.spec import InputSpec


class CNN(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], n_out: int, params: CNNParams) -> None:
        super().__init__()
        c, h, w = image_shape
        blocks: list[nn.Module] = []
        for out in params.channels:
            for _ in range(params.convs_per_block):
                blocks.append(nn.Conv2d(c, out, params.kernel_size, padding=params.kernel_size // 2))
                if params.batch_norm:
                    blocks.append(nn.BatchNorm2d(out))
                blocks.append(nn.ReLU())
                c = out
            if params.pool != "none" and min(h, w) >= 2:
                blocks.append(nn.MaxPool2d(2) if params.pool == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            if params.dropout:
                blocks.append(nn.Dropout2d(params.dropout))
        self.features = nn.Sequential(*blocks)
        self.global_pool = params.global_pool
        flat = c if params.global_pool else c * h * w
        if params.head_hidden:
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(flat, params.head_hidden),
                nn.ReLU(),
                nn.Dropout(params.head_dropout),
                nn.Linear(params.head_hidden, n_out),
            )
        else:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        if self.global_pool:
            z = z.mean(dim=(2, 3))
        return self.head(z)


@register("cnn", CNNParams, input_kinds=("image",))
def build(params: CNNParams, spec: InputSpec) -> nn.Module:
    assert spec.image_shape is not None
    return CNN(spec.image_shape, spec.n_outputs, params)
