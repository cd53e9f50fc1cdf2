"""Token attributions for the text family: Captum ``LayerIntegratedGradients`` on the encoder's input embeddings
toward the predicted class (baseline: pad tokens, special tokens kept), the deletion check for tokens
(:func:`token_faithfulness`) and the highlighted-text HTML the report and ``shipyard explain`` show.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import torch
from torch import nn

from shipyard.errors import ShipyardError

__all__ = ["highlight_html", "token_attributions", "token_faithfulness"]

TEXT_IG_STEPS = 16


def _token_tensors(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` / ``attention_mask`` as tensors, trimmed to the longest row (fewer positions to integrate)."""
    ids = torch.as_tensor(np.asarray(inputs["input_ids"]), dtype=torch.long)
    mask = torch.as_tensor(np.asarray(inputs["attention_mask"]), dtype=torch.long)
    width = max(1, int(mask.sum(dim=1).max())) if len(mask) else ids.shape[1]
    return ids[:, :width], mask[:, :width]


def _text_forward(model: nn.Module) -> Any:
    def fwd(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask)

    return fwd


def _special_positions(ids: torch.Tensor, mask: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    """True where a position is padding or a special token ([CLS], [SEP]): never attributed, masked or removed."""
    special = torch.zeros_like(ids, dtype=torch.bool)
    # [UNK] stands for a real (out-of-vocabulary) word, so it is attributed like any other
    fixed = set(getattr(tokenizer, "all_special_ids", []) or []) - {getattr(tokenizer, "unk_token_id", None)}
    for sid in fixed:
        special |= ids == int(sid)
    return special | (mask == 0)


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _token_scores(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, tokenizer: Any
) -> tuple[np.ndarray, torch.Tensor]:
    """LayerIntegratedGradients on the input embeddings toward the predicted class: (N, L) scores, classes."""
    from captum.attr import LayerIntegratedGradients  # heavy: Captum, only when explaining

    model.eval()
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "get_input_embeddings"):
        raise ShipyardError("token attributions need a transformer with input embeddings", where="model")
    fwd = _text_forward(model)
    with torch.no_grad():
        target = fwd(ids, mask).argmax(dim=1)
    # the baseline keeps [CLS] / [SEP] and the attention mask: only the words themselves are "absent"
    baseline = torch.where(_special_positions(ids, mask, tokenizer), ids, torch.full_like(ids, _pad_id(tokenizer)))
    lig = LayerIntegratedGradients(fwd, encoder.get_input_embeddings())
    # Captum's internal batch counts (row, step) pairs and must hold every row: 4 of the 16 steps per pass
    attr = lig.attribute(
        ids,
        baselines=baseline,
        additional_forward_args=(mask,),
        target=target,
        n_steps=TEXT_IG_STEPS,
        internal_batch_size=max(1, len(ids)) * 4,
    )
    return attr.sum(dim=-1).detach().float().numpy(), target


def token_attributions(model: nn.Module, inputs: dict[str, np.ndarray], tokenizer: Any) -> list[dict[str, Any]]:
    """LayerIntegratedGradients on the encoder's input embeddings: per row the explained class, its probability
    and one (token, attribution) pair per real token (positive: toward that class)."""
    ids, mask = _token_tensors(inputs)
    scores, target = _token_scores(model, ids, mask, tokenizer)
    with torch.no_grad():
        proba = torch.softmax(_text_forward(model)(ids, mask).float(), dim=1)
    out = []
    for i in range(ids.shape[0]):
        keep = mask[i].bool()
        toks = tokenizer.convert_ids_to_tokens(ids[i][keep].tolist())
        out.append(
            {
                "class": int(target[i]),
                "probability": float(proba[i, target[i]]),
                "tokens": [(t, float(s)) for t, s in zip(toks, scores[i][keep.numpy()], strict=True)],
            }
        )
    return out


def _delete_tokens(
    ids: torch.Tensor, mask: torch.Tensor, drop: list[list[int]], how: str, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of the rows with the positions in ``drop`` masked (set to the pad id, the attribution baseline) or
    removed (the sequence closes up, so the model sees a shorter sentence)."""
    if how == "mask":
        new_ids = ids.clone()
        for i, positions in enumerate(drop):
            new_ids[i, positions] = pad
        return new_ids, mask.clone()
    new_ids = torch.full_like(ids, pad)
    new_mask = torch.zeros_like(mask)
    for i, positions in enumerate(drop):
        keep = [j for j in range(ids.shape[1]) if mask[i, j] and j not in set(positions)]
        new_ids[i, : len(keep)] = ids[i, keep]
        new_mask[i, : len(keep)] = 1
    return new_ids, new_mask


def token_faithfulness(
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    tokenizer: Any,
    k: int = 2,
    *,
    how: str = "mask",
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Deletion check for token attributions: mean drop in the predicted class's probability when the k tokens
    attributed most toward it are masked / removed, versus k random (non-special) tokens (``repeats`` draws).

    Rows with fewer than k + 1 real tokens are skipped: deleting all of them says nothing about the ranking."""
    if how not in ("mask", "remove"):
        raise ShipyardError(f"unknown deletion {how!r}: use mask or remove", where="how")
    ids, mask = _token_tensors(inputs)
    scores, target = _token_scores(model, ids, mask, tokenizer)
    special = _special_positions(ids, mask, tokenizer).numpy()
    rows = [i for i in range(len(ids)) if int((~special[i]).sum()) > k]
    if not rows:
        raise ShipyardError(f"no row has more than k={k} real tokens", where="inputs")
    ids, mask, scores, special, target = ids[rows], mask[rows], scores[rows], special[rows], target[rows]
    fwd, pad = _text_forward(model), _pad_id(tokenizer)
    picked = torch.arange(len(rows))

    def prob(i: torch.Tensor, m: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(fwd(i, m).float(), dim=1)[picked, target].numpy()

    base = prob(ids, mask)
    top = [[int(j) for j in np.argsort(-np.where(special[r], -np.inf, scores[r]))[:k]] for r in range(len(rows))]
    top_p = prob(*_delete_tokens(ids, mask, top, how, pad))
    rng = np.random.default_rng(seed)
    random_drops = []
    for _ in range(repeats):
        rnd = [
            [int(j) for j in rng.choice(np.flatnonzero(~special[r]), size=k, replace=False)] for r in range(len(rows))
        ]
        random_drops.append(float((base - prob(*_delete_tokens(ids, mask, rnd, how, pad))).mean()))
    return {
        "k": k,
        "how": how,
        "rows": len(rows),
        "top_k_drop": float((base - top_p).mean()),
        "random_drop": float(np.mean(random_drops)),
    }


def highlight_html(tokens: list[tuple[str, float]]) -> str:
    peak = max((abs(s) for _, s in tokens), default=1.0) or 1.0
    spans = []
    for tok, s in tokens:
        alpha = min(1.0, abs(s) / peak)
        color = f"rgba(0,160,0,{alpha:.2f})" if s >= 0 else f"rgba(220,0,0,{alpha:.2f})"
        spans.append(
            f'<span class="token-attr" style="background:{color};padding:1px" title="{s:.4f}">{html.escape(tok)}</span>'
        )
    return "<p>" + " ".join(spans) + "</p>"
