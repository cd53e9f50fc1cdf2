"""The multiple-negatives ranking loss for a bi-encoder (Henderson et al. 2017; sentence-transformers' MNRL).

Each row of the model's output holds a query, its passage and optionally one hard negative, side by side (dim D
each). Every query is scored against every passage in the batch (and every hard negative); the cross-entropy
asks for its own passage first. Passages of the query's own group (same target) are also right answers, so they
are masked out of its negatives instead of being pushed away (with 27 intents a batch of 32 has many).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def ranking_loss(dim: int, scale: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        outputs = outputs.float()
        n = outputs.shape[0]
        query = outputs[:, :dim]
        docs = outputs[:, dim : 2 * dim]
        scores = query @ docs.T * scale  # (N, N): column j is row j's passage
        same = target.reshape(-1, 1) == target.reshape(1, -1)
        others = same & ~torch.eye(n, dtype=torch.bool, device=outputs.device)
        scores = scores.masked_fill(others, float("-inf"))
        if outputs.shape[1] >= 3 * dim:  # hard negatives: mined from other groups, always wrong
            scores = torch.cat([scores, query @ outputs[:, 2 * dim : 3 * dim].T * scale], dim=1)
        return F.cross_entropy(scores, torch.arange(n, device=outputs.device))

    return loss
