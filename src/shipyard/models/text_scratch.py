"""Text models trained from scratch on a vocabulary learnt from the training split (``shipyard.data.vocab``).

For languages and domains a pretrained encoder cannot read (ChnSentiCorp's Chinese is 65 % [UNK] to the bundled
English MiniLM), three families over the same inputs, ``{"input_ids", "attention_mask"}`` of n-gram ids, all
trained by the torch engine:

- ``text_linear``: logistic (or linear) regression over TF-IDF n-gram features. The TF-IDF vector is computed
  inside the model from the ids (sublinear term frequency, smoothed idf learnt with the vocabulary, L2 norm, as
  scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``), so the exported graph needs nothing but the ids.
- ``text_bag``: fastText (Joulin et al. 2017): the mean of n-gram embeddings, then a linear layer.
- ``text_cnn``: a convolutional network over unit embeddings (Kim 2014): several widths, max over time.

The vocabulary is ``shipyard.data.vocab.VocabEncoder`` (the pipeline makes it from these families' parameters:
models and data know nothing of each other). The vocabulary size and idf come from the fitted encoder:
:func:`data_params` gives the build parameters the artifact records (``artifact_params``), :meth:`adapt` copies
the idf into the model (then saved with its weights).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shipyard.config.models import TextBagParams, TextCNNParams, TextLinearParams
from shipyard.errors import ShipyardError
from shipyard.models.registry import register
from shipyard.spec import InputSpec


def data_params(preprocessor: Any) -> dict[str, Any]:
    """Build parameters that come from the fitted data (recorded in the artifact as ``artifact_params``)."""
    encoder = getattr(preprocessor, "text_encoder", None)
    if encoder is None or not hasattr(encoder, "idf"):
        raise ShipyardError("a from-scratch text model needs the vocabulary encoder", where="model.type")
    return {"n_vocab": int(encoder.vocab_size)}


def _need_vocab(params: Any) -> int:
    if not params.n_vocab:
        raise ShipyardError(
            "the vocabulary size is set from the fitted encoder (n_vocab); it was not given",
            where="model.n_vocab",
            hint="train through `shipyard train` (the pipeline fits the vocabulary first)",
        )
    return int(params.n_vocab)


class _Adapted(nn.Module):
    idf: torch.Tensor

    def get_input_embeddings(self) -> nn.Module:
        """The n-gram embedding (token attributions integrate along its output, as for a transformer's)."""
        return self.weight if isinstance(self, TfidfLinear) else self.embedding

    def adapt(self, preprocessor: Any) -> None:
        """Take the learnt idf from the fitted encoder (a buffer: saved and exported with the weights)."""
        idf = torch.as_tensor(preprocessor.text_encoder.idf, dtype=torch.float32)
        if idf.shape != self.idf.shape:
            raise ShipyardError(f"idf of {len(idf)} ids for a model of {len(self.idf)}", where="model")
        self.idf.copy_(idf)


def tfidf_weights(
    ids: torch.Tensor, mask: torch.Tensor, idf: torch.Tensor, sublinear: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The row's ids re-ordered (sorted, padding last) and, per position, the share of its n-gram's L2-normalised
    TF-IDF value (summing one n-gram's positions gives its value). Term frequencies come from the ids alone:
    sorted, equal ids are runs, counted with a scatter-add, so the cost is O(L) per row and the graph exports."""
    valid = mask.to(torch.bool)
    big = torch.full_like(ids, idf.shape[0])
    keyed, _ = torch.sort(torch.where(valid, ids, big), dim=1)
    valid = keyed < idf.shape[0]
    ids = torch.where(valid, keyed, torch.zeros_like(keyed))
    start = torch.ones_like(valid)
    start[:, 1:] = keyed[:, 1:] != keyed[:, :-1]
    group = start.to(torch.int64).cumsum(dim=1) - 1
    counts = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    counts = counts.scatter_add(1, group, valid.to(torch.float32))
    tf = counts.gather(1, group).clamp(min=1.0)
    value = (1.0 + torch.log(tf)) if sublinear else tf  # the n-gram's TF-IDF numerator, before the idf
    value = value * idf[ids]
    per_position = torch.where(valid, value / tf, torch.zeros_like(value))
    norm = torch.sqrt((per_position * value).sum(dim=1, keepdim=True)).clamp(min=1e-12)
    return ids, per_position / norm


class TfidfLinear(_Adapted):
    def __init__(self, n_vocab: int, n_outputs: int, params: TextLinearParams) -> None:
        super().__init__()
        self.weight = nn.Embedding(n_vocab, n_outputs, padding_idx=0)
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.zeros(n_outputs))
        self.register_buffer("idf", torch.ones(n_vocab))
        self.sublinear = params.sublinear_tf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids, w = tfidf_weights(input_ids, attention_mask, self.idf, self.sublinear)
        return (self.weight(ids) * w.unsqueeze(2)).sum(dim=1) + self.bias


class EmbeddingBag(_Adapted):
    def __init__(self, n_vocab: int, n_outputs: int, params: TextBagParams) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_vocab, params.dim, padding_idx=0)
        nn.init.uniform_(self.embedding.weight, -1.0 / params.dim, 1.0 / params.dim)
        self.register_buffer("idf", torch.ones(n_vocab))
        self.weighting = params.weighting
        self.dropout = nn.Dropout(params.dropout)
        self.hidden = nn.Sequential(nn.Linear(params.dim, params.hidden), nn.ReLU()) if params.hidden else None
        self.head = nn.Linear(params.hidden or params.dim, n_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.weighting == "tfidf":
            ids, w = tfidf_weights(input_ids, attention_mask, self.idf, True)
        else:  # fastText's plain mean
            ids, w = input_ids, attention_mask.to(torch.float32)
            w = w / w.sum(dim=1, keepdim=True).clamp(min=1.0)
        pooled = (self.embedding(ids) * w.unsqueeze(2)).sum(dim=1)
        pooled = self.dropout(pooled)
        if self.hidden is not None:
            pooled = self.dropout(self.hidden(pooled))
        return self.head(pooled)


class TextCNN(_Adapted):
    def __init__(self, n_vocab: int, n_outputs: int, params: TextCNNParams) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_vocab, params.dim, padding_idx=0)
        self.register_buffer("idf", torch.ones(n_vocab))  # unused by the CNN; kept so every family adapts alike
        self.widths = list(params.widths)
        self.convs = nn.ModuleList(nn.Conv1d(params.dim, params.filters, w, padding=w - 1) for w in self.widths)
        self.dropout = nn.Dropout(params.dropout)
        self.head = nn.Linear(params.filters * len(self.widths), n_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(input_ids)).transpose(1, 2)  # (N, dim, L)
        valid = attention_mask.to(torch.bool)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(x))[:, :, : input_ids.shape[1]]  # position i: the window ending at i
            h = h.masked_fill(~valid.unsqueeze(1), -math.inf)
            pooled.append(h.amax(dim=2).clamp(min=0.0))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


# the pipeline gives these families a vocabulary learnt from the training split (data/vocab.py), and their
# build parameters from it
_HOOKS: dict[str, Any] = {"text_encoder": "vocabulary", "data_params": data_params}


@register("text_linear", TextLinearParams, input_kinds=("text",), **_HOOKS)
def build_linear(params: TextLinearParams, spec: InputSpec) -> nn.Module:
    return TfidfLinear(_need_vocab(params), spec.n_outputs, params)


@register("text_bag", TextBagParams, input_kinds=("text",), **_HOOKS)
def build_bag(params: TextBagParams, spec: InputSpec) -> nn.Module:
    return EmbeddingBag(_need_vocab(params), spec.n_outputs, params)


@register("text_cnn", TextCNNParams, input_kinds=("text",), **_HOOKS)
def build_cnn(params: TextCNNParams, spec: InputSpec) -> nn.Module:
    return TextCNN(_need_vocab(params), spec.n_outputs, params)
