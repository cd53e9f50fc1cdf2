"""A two-tower recommender whose item tower reads item metadata, so items with no history can be recommended.

- **Item tower**: an MLP over each item's feature row (the MiniLM embedding of its text, genre flags, numbers:
  built by `shipyard.data.item_features`), plus a learnt per-item embedding for items seen in training. The id
  embedding is dropped at random during training (``id_dropout``) so the tower learns to place items from their
  metadata alone; a cold item (no events) gets its vector from metadata only.
- **User tower**: the user's recent items (up to ``history``, most recent last) pooled through the item tower with
  learnt recency weights, the most recent item's vector, and the user's features (age, gender, occupation...),
  through an MLP. A new event changes the user's vector on the next call: the user tower *is* the fold-in.
- **Training**: for each event, the history before it predicts it; a softmax over the catalogue's trainable items
  (the whole catalogue at a time: cheap for thousands of items), both towers L2-normalised, divided by a
  temperature. Held-out (cold) items are masked out of training, so none of their events is ever learnt from.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PAD = -1


def sequence_examples(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, history: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user (N,), hist (N, history) with PAD on the left, target (N,)): each event with the events before it."""
    order = np.lexsort((np.arange(len(users)), timestamps, users))
    u, it = np.asarray(users)[order], np.asarray(items)[order]
    hist = np.full((len(u), history), PAD, dtype=np.int64)
    start = 0
    for end in np.append(np.flatnonzero(np.diff(u)) + 1, len(u)):
        seq = it[start:end]
        for j in range(1, min(history, len(seq)) + 1):  # column -j holds the event j steps back
            hist[start + j : end, history - j] = seq[: len(seq) - j]
        start = end
    return u.astype(np.int64), hist, it.astype(np.int64)


def last_histories(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, n_users: int, history: int
) -> np.ndarray:
    """(n_users, history): each user's most recent items (PAD where fewer), for scoring after training."""
    order = np.lexsort((np.arange(len(users)), timestamps, users))
    u, it = np.asarray(users)[order], np.asarray(items)[order]
    out = np.full((n_users, history), PAD, dtype=np.int64)
    start = 0
    for end in np.append(np.flatnonzero(np.diff(u)) + 1, len(u)) if len(u) else []:
        seq = it[max(start, end - history) : end]
        out[u[start], history - len(seq) :] = seq
        start = end
    return out


class TwoTower(nn.Module):
    def __init__(
        self,
        item_features: np.ndarray,
        user_features: np.ndarray | None = None,
        *,
        trainable: np.ndarray | None = None,
        dim: int = 64,
        hidden: int = 256,
        history: int = 50,
        id_dropout: float = 0.5,
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        n_items, f_item = item_features.shape
        self.n_items, self.history, self.dim = n_items, history, dim
        self.id_dropout, self.temperature = id_dropout, temperature
        ux = np.zeros((1, 0), np.float32) if user_features is None else user_features
        mask = np.ones(n_items, bool) if trainable is None else np.asarray(trainable, bool)
        self.register_buffer("item_x", torch.as_tensor(np.asarray(item_features, np.float32)))
        self.register_buffer("user_x", torch.as_tensor(np.asarray(ux, np.float32)))
        self.register_buffer("known", torch.as_tensor(mask))
        self.item_mlp = nn.Sequential(nn.Linear(f_item, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.item_id = nn.Embedding(n_items, dim)
        nn.init.zeros_(self.item_id.weight)
        self.position = nn.Parameter(torch.zeros(history))  # recency weights (softmax over the valid positions)
        f_user = 2 * dim + self.user_x.shape[1]
        self.user_mlp = nn.Sequential(nn.Linear(f_user, hidden), nn.GELU(), nn.Linear(hidden, dim))

    # ------------------------------------------------------------------ towers
    def _item_all(self) -> torch.Tensor:
        """(I, dim) unit item vectors; during training each item's id embedding is dropped with id_dropout."""
        ids = self.item_id.weight * self.known.unsqueeze(-1)
        if self.training and self.id_dropout > 0:
            keep = (torch.rand(self.n_items, 1, device=ids.device) >= self.id_dropout).to(ids.dtype)
            ids = ids * keep
        return F.normalize(self.item_mlp(self.item_x) + ids, dim=-1)

    def _user(self, items: torch.Tensor, hist: torch.Tensor, uidx: torch.Tensor) -> torch.Tensor:
        valid = hist >= 0
        vecs = items[hist.clamp(min=0)] * valid.unsqueeze(-1)
        w = self.position[-hist.shape[1] :].expand_as(hist).masked_fill(~valid, float("-inf"))
        w = torch.nan_to_num(torch.softmax(w, dim=-1), nan=0.0)  # a user with no history: all-zero weights
        pooled = (w.unsqueeze(-1) * vecs).sum(1)
        last = vecs[:, -1]
        if self.user_x.shape[1]:
            feats = self.user_x[uidx.clamp(min=0)] * (uidx >= 0).unsqueeze(-1)  # anonymous: no features
            parts = [pooled, last, feats]
        else:
            parts = [pooled, last]
        return F.normalize(self.user_mlp(torch.cat(parts, dim=-1)), dim=-1)

    def forward(self, hist: torch.Tensor, uidx: torch.Tensor) -> torch.Tensor:
        """(N, I) logits over the catalogue; items not trainable are masked while training."""
        items = self._item_all()
        logits = self._user(items, hist, uidx) @ items.T / self.temperature
        if self.training:
            logits = logits.masked_fill(~self.known, float("-inf"))
        return logits

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), target.long())

    # ------------------------------------------------------------------ serving views
    def item_vectors(self) -> np.ndarray:
        with torch.no_grad():
            was = self.training
            self.eval()
            out = self._item_all().float().cpu().numpy()
            self.train(was)
        return out

    def user_vectors_from(self, hist: np.ndarray, uidx: np.ndarray) -> np.ndarray:
        """(N, dim) user vectors from histories (N, history) and user positions (-1: anonymous)."""
        with torch.no_grad():
            was = self.training
            self.eval()
            items = self._item_all()
            out = self._user(items, torch.as_tensor(hist, dtype=torch.long), torch.as_tensor(uidx, dtype=torch.long))
            self.train(was)
        return out.float().cpu().numpy()

    def fold_in(self, items: np.ndarray, user: int = -1) -> np.ndarray:
        """The vector of a user whose recent items (oldest first) are ``items``."""
        hist = np.full((1, self.history), PAD, dtype=np.int64)
        recent = np.asarray(items, dtype=np.int64)[-self.history :]
        if len(recent):
            hist[0, -len(recent) :] = recent
        return self.user_vectors_from(hist, np.array([user]))[0]
