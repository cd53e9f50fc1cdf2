"""A small randomly initialised BERT saved as a local Hugging Face folder: the `transformer` family loads it like
any pretrained encoder, so optimize tests need no real weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_tiny_bert(folder: Path, *, vocab_size: int, hidden_size: int, tokenizer: Any = None) -> Path:
    """Two layers, four heads, FFN twice the width; ``tokenizer`` (if given) is saved beside the weights."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return folder
