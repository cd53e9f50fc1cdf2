"""A bi-encoder for semantic search (`task: retrieval`): one shared pretrained encoder (all-MiniLM-L6-v2 by
default) embeds queries and passages, masked-mean pooled and L2-normalised, so a dot product is the cosine.

``forward`` takes the query's ``input_ids`` / ``attention_mask`` and optionally a passage (``p_``) and a hard
negative (``n_``), and returns their embeddings side by side, (N, D), (N, 2D) or (N, 3D): one row per pair, so the
engine's batching, prediction and checkpoints work unchanged and the ranking loss (training/contrastive.py) builds
the in-batch similarity matrix from them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shipyard.config.models import BiEncoderParams, TransformerParams
from shipyard.models.registry import register
from shipyard.models.transformer import ENCODER_DIR, load_encoder
from shipyard.pretrained import TOKENIZER_DIR, load_tokenizer, resolve_model_dir
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)


class BiEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, params: BiEncoderParams, source: Path | None) -> None:
        super().__init__()
        self.encoder = encoder
        self.params_cfg = params
        self.source_dir = source
        self.dim = int(encoder.config.hidden_size)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length sentence vectors (N, D); inputs are trimmed to their longest row first."""
        width = max(1, int(attention_mask.sum(dim=1).max()))
        input_ids, attention_mask = input_ids[:, :width], attention_mask[:, :width]
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return F.normalize(pooled.float(), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **others: torch.Tensor) -> torch.Tensor:
        parts = [self.embed(input_ids, attention_mask)]
        for prefix in ("p_", "n_"):
            if f"{prefix}input_ids" in others:
                parts.append(self.embed(others[f"{prefix}input_ids"], others[f"{prefix}attention_mask"]))
        return torch.cat(parts, dim=1)

    def tokenizer(self) -> Any:
        """The tokenizer this encoder was trained with (the artifact's own folder, else the source folder)."""
        if self.params_cfg.artifact_dir is not None:
            return load_tokenizer(Path(self.params_cfg.artifact_dir) / TOKENIZER_DIR)
        return load_tokenizer(self.source_dir or resolve_model_dir(self.params_cfg.pretrained))

    def save_extra(self, folder: str | Path) -> None:
        """``encoder/config.json`` and ``tokenizer/`` beside the weights: the artifact is self-contained."""
        folder = Path(folder)
        (folder / ENCODER_DIR).mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(str(folder / ENCODER_DIR))
        target = folder / TOKENIZER_DIR
        if not (target / "tokenizer.json").is_file():
            self.tokenizer().save_pretrained(str(target))


@register("biencoder", BiEncoderParams, input_kinds=("text",))
def build_biencoder(params: BiEncoderParams, spec: InputSpec) -> nn.Module:
    # the encoder loader is the transformer family's: the same offline folders and artifact layout
    encoder_params = TransformerParams(pretrained=params.pretrained, artifact_dir=params.artifact_dir)
    encoder, source = load_encoder(encoder_params)
    return BiEncoder(encoder, params, source)


def load_biencoder(folder: str | Path, params: dict[str, Any]) -> BiEncoder:
    """The trained bi-encoder saved in an artifact folder (weights from its model.safetensors)."""
    from safetensors.torch import load_file

    cfg = BiEncoderParams(**{**params, "artifact_dir": str(folder)})
    model = build_biencoder(cfg, InputSpec(kind="text", n_outputs=0))
    model.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
    return model.eval()
