"""Biased matrix factorisation (explicit ratings) and BPR (implicit feedback with sampled negatives).

Both are plain ``nn.Module``s trained by the platform's engine (`shipyard.training.recommend`): ``forward(user,
item)`` gives scores (N, 1); ``loss(outputs, target)`` is the training objective, with an L2 penalty on the rows
each batch touched (per occurrence, as in the classic SGD formulation), which regularises frequent users and items
more than dense weight decay would.

- ``BiasedMF``: ``r = mu + b_u + b_i + p_u . q_i``, squared error.
- ``BPR``: ``s = b_i + p_u . q_i``; ``forward(user, item, neg)`` gives (N, 2) positive and negative scores and the
  loss is ``-log sigmoid(s_pos - s_neg)`` (Rendle et al. 2009); the negatives come from the engine callback.

For ranking and serving both expose ``item_vectors`` ``[q_i, b_i]`` and ``user_vectors`` ``[p_u, 1]``, whose inner
product orders items as the model does (``mu`` and ``b_u`` are constant per user).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shipyard.models.recommend.foldin import fold_in_explicit, fold_in_implicit


class _Factors(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, reg: float, init_std: float) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim, self.reg = n_users, n_items, dim, reg
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)
        nn.init.zeros_(self.item_bias.weight)
        self.penalty = torch.zeros(())

    def item_vectors(self) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([self.item.weight, self.item_bias.weight], dim=1).float().cpu().numpy()

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            p = self.user.weight[torch.as_tensor(users, dtype=torch.long)].float().cpu().numpy()
        return np.concatenate([p, np.ones((len(p), 1), dtype=np.float32)], axis=1)

    def set_user_vector(self, user: int, vector: np.ndarray) -> None:
        """Overwrite one user's factors (the served fold-in; erasure resets them)."""
        with torch.no_grad():
            self.user.weight[user] = torch.as_tensor(vector[: self.dim], dtype=self.user.weight.dtype)


class BiasedMF(_Factors):
    def __init__(
        self, n_users: int, n_items: int, *, dim: int = 64, reg: float = 0.05, global_mean: float = 0.0,
        init_std: float = 0.01,
    ) -> None:  # fmt: skip
        super().__init__(n_users, n_items, dim, reg, init_std)
        self.user_bias = nn.Embedding(n_users, 1)
        nn.init.zeros_(self.user_bias.weight)
        self.register_buffer("mu", torch.tensor(float(global_mean)))

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        p, q = self.user(user), self.item(item)
        bu, bi = self.user_bias(user).squeeze(-1), self.item_bias(item).squeeze(-1)
        if self.training:
            self.penalty = self.reg * (p.pow(2).sum(-1) + q.pow(2).sum(-1) + bu.pow(2) + bi.pow(2)).mean()
        return (self.mu + bu + bi + (p * q).sum(-1)).unsqueeze(-1)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = F.mse_loss(outputs.float().reshape(-1), target.float().reshape(-1))
        return mse + self.penalty if self.training else mse

    def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            self.eval()
            u, i = torch.as_tensor(users, dtype=torch.long), torch.as_tensor(items, dtype=torch.long)
            return self(u, i).reshape(-1).float().cpu().numpy()

    def fold_in(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """A user vector (as ``user_vectors`` gives) from this user's ratings alone, items fixed."""
        with torch.no_grad():
            q = self.item.weight.float().cpu().numpy()
            bi = self.item_bias.weight.float().cpu().numpy().reshape(-1)
        p, _ = fold_in_explicit(q, bi, float(self.mu), items, ratings, reg=self.reg)
        return np.concatenate([p, [1.0]]).astype(np.float32)


class BPR(_Factors):
    def __init__(
        self, n_users: int, n_items: int, *, dim: int = 64, reg: float = 1e-4, init_std: float = 0.01,
    ) -> None:  # fmt: skip
        super().__init__(n_users, n_items, dim, reg, init_std)

    def _score(self, p: torch.Tensor, item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.item(item)
        return (p * q).sum(-1) + self.item_bias(item).squeeze(-1), q

    def forward(self, user: torch.Tensor, item: torch.Tensor, neg: torch.Tensor | None = None) -> torch.Tensor:
        p = self.user(user)
        pos, q = self._score(p, item)
        if neg is None:
            return pos.unsqueeze(-1)
        negs, qn = self._score(p, neg)
        if self.training:
            self.penalty = self.reg * (p.pow(2).sum(-1) + q.pow(2).sum(-1) + qn.pow(2).sum(-1)).mean()
        return torch.stack([pos, negs], dim=-1)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if outputs.shape[-1] < 2:  # scored without negatives (evaluation): there is no pairwise loss
            return torch.zeros((), device=outputs.device)
        out = -F.logsigmoid(outputs[:, 0] - outputs[:, 1]).mean()
        return out + self.penalty if self.training else out

    def fold_in(
        self, items: np.ndarray, weights: np.ndarray | None = None, *, gram: np.ndarray | None = None
    ) -> np.ndarray:
        with torch.no_grad():
            q = self.item.weight.float().cpu().numpy()
        p = fold_in_implicit(q, items, weights, reg=max(self.reg * 100, 0.01), gram=gram)
        return np.concatenate([p, [1.0]]).astype(np.float32)
