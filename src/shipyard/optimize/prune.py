"""Pruning: global magnitude (unstructured) and structured (really smaller matrices).

Unstructured pruning zeroes the smallest-magnitude weights across every Linear / Conv layer at once
(``global_unstructured`` with L1), fine-tunes with the masks in place so the zeros stay zero, then makes the masks
permanent. The tensors keep their shapes: dense kernels multiply the zeros like any other number, so this gives
no speed-up and no smaller file by itself; the table says so.

Structured pruning removes whole units and rebuilds smaller layers:

- MLP: hidden neurons, scored by the product of their incoming and outgoing weight norms; the saved ``hidden``
  list describes the smaller widths, so the artifact loader rebuilds the small model.
- CNN: output channels, scored by their filters' L1 norm; the conv, its batch norm and the next layer's input
  (the next conv, or the head's first Linear after flattening) shrink together, and ``channels`` is rewritten.
- Transformer (BERT-style encoders): attention heads (query/key/value rows and the attention output's columns)
  and FFN neurons (intermediate rows, output columns), the same count in every layer. Hugging Face
  ``prune_heads`` is gone from transformers 5, so the slicing is done here.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from shipyard.config.models import CNNParams
from shipyard.errors import ShipyardError
from shipyard.models.registry import TargetScaled, build_for_task

log = logging.getLogger(__name__)


def _inner(model: nn.Module) -> nn.Module:
    return model.inner if isinstance(model, TargetScaled) else model


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every Linear / Conv weight (embeddings and norms stay: they hold little compute)."""
    return [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]


def apply_global_magnitude(model: nn.Module, sparsity: float) -> None:
    """Mask the smallest |w| globally; the masks stay attached (re-applied each forward) until `make_permanent`."""
    params = prunable(model)
    if not params:
        raise ShipyardError("the model has no Linear or Conv layers to prune", where="optimize.methods")
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=float(sparsity))


def make_permanent(model: nn.Module) -> None:
    for module, name in prunable(model):
        if tprune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            tprune.remove(module, name)


def weight_sparsity(model: nn.Module) -> float:
    """Zero fraction over the prunable weights (what the pruning targeted)."""
    total = zeros = 0
    for module, name in prunable(model):
        w = getattr(module, name)
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / total if total else 0.0


# ---------------------------------------------------------------------------------------------------- structured
def _keep(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    n = max(1, round(len(scores) * fraction))
    return torch.sort(torch.topk(scores, n).indices).values


def structured_prune(
    model: nn.Module, model_type: str, params: dict[str, Any], spec: Any, target_scale: Any, sparsity: float
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """A smaller model with ``sparsity`` of its units removed, its parameters and a description of the cut."""
    keep_fraction = 1.0 - float(sparsity)
    with torch.no_grad():
        if model_type == "mlp":
            return _prune_mlp(model, params, spec, target_scale, keep_fraction)
        if model_type == "cnn":
            return _prune_cnn(model, params, spec, target_scale, keep_fraction)
        if model_type == "transformer":
            small = copy.deepcopy(model)
            info = prune_transformer(small, keep_fraction)
            return small, dict(params), info
    raise ShipyardError(
        f"structured pruning needs hidden units; model type `{model_type}` has none to remove",
        where="optimize.structured",
        hint="use structured: false (magnitude pruning) for this model",
    )


def _prune_mlp(
    model: nn.Module, params: dict[str, Any], spec: Any, scale: Any, keep_fraction: float
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    old = _inner(model)
    linears = [m for m in old.body if isinstance(m, nn.Linear)]
    norms = [m for m in old.body if isinstance(m, nn.BatchNorm1d)]
    following = [*linears[1:], old.head]
    keeps = []
    for layer, nxt in zip(linears, following, strict=True):
        # a neuron matters when it both receives and sends large weights
        score = layer.weight.norm(dim=1) * nxt.weight.norm(dim=0)
        keeps.append(_keep(score, keep_fraction))
    new_params = {**params, "hidden": [len(k) for k in keeps]}
    small = build_for_task("mlp", new_params, spec, scale)
    new = _inner(small)
    new_linears = [m for m in new.body if isinstance(m, nn.Linear)]
    new_norms = [m for m in new.body if isinstance(m, nn.BatchNorm1d)]
    prev = _copy_kept_units(linears, new_linears, norms, new_norms, keeps, linears[0].in_features)
    new.head.weight.copy_(old.head.weight[:, prev])
    new.head.bias.copy_(old.head.bias)
    info = {"unit": "neurons", "before": [len(s.bias) for s in linears], "after": new_params["hidden"]}
    return small, new_params, info


def _copy_kept_units(
    layers: list[nn.Module],
    new_layers: list[nn.Module],
    norms: list[nn.Module],
    new_norms: list[nn.Module],
    keeps: list[torch.Tensor],
    n_inputs: int,
) -> torch.Tensor:
    """Copy each layer's kept output units (neurons / channels) and, from the layer before, only the kept inputs;
    the i-th norm follows the i-th layer. Returns the last layer's kept units (the head's inputs)."""
    prev = torch.arange(n_inputs)
    for keep, src, dst in zip(keeps, layers, new_layers, strict=True):
        dst.weight.copy_(src.weight[keep][:, prev])
        if src.bias is not None:
            dst.bias.copy_(src.bias[keep])
        prev = keep
    for i, (src, dst) in enumerate(zip(norms, new_norms, strict=True)):
        _copy_norm(src, dst, keeps[i])
    return prev


def _copy_norm(src: nn.Module, dst: nn.Module, keep: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(src, name, None)
        if value is not None:
            getattr(dst, name).copy_(value[keep])
    if getattr(src, "num_batches_tracked", None) is not None:
        dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _prune_cnn(
    model: nn.Module, params: dict[str, Any], spec: Any, scale: Any, keep_fraction: float
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    old = _inner(model)
    convs = [m for m in old.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in old.features if isinstance(m, nn.BatchNorm2d)]
    keeps = [_keep(c.weight.abs().sum(dim=(1, 2, 3)), keep_fraction) for c in convs]
    per_block = CNNParams.model_validate(params).convs_per_block
    # every conv of a block has the block's width, so the block's new width is its (equal) kept count
    new_channels = [len(keeps[b * per_block]) for b in range(len(convs) // per_block)]
    new_params = {**params, "channels": new_channels}
    small = build_for_task("cnn", new_params, spec, scale)
    new = _inner(small)
    new_convs = [m for m in new.features if isinstance(m, nn.Conv2d)]
    new_norms = [m for m in new.features if isinstance(m, nn.BatchNorm2d)]
    prev = _copy_kept_units(convs, new_convs, norms, new_norms, keeps, convs[0].in_channels)
    old_lin = [m for m in old.head if isinstance(m, nn.Linear)]
    new_lin = [m for m in new.head if isinstance(m, nn.Linear)]
    first_old, first_new = old_lin[0], new_lin[0]
    channels_old = convs[-1].out_channels
    spatial = first_old.in_features // channels_old  # 1 with global pooling, h*w after flattening
    cols = (prev[:, None] * spatial + torch.arange(spatial)[None, :]).reshape(-1)
    first_new.weight.copy_(first_old.weight[:, cols])
    first_new.bias.copy_(first_old.bias)
    for src, dst in zip(old_lin[1:], new_lin[1:], strict=True):
        dst.load_state_dict(src.state_dict())
    info = {"unit": "channels", "before": [c.out_channels for c in convs], "after": [len(k) for k in keeps]}
    return small, new_params, info


def _encoder_layers(model: nn.Module) -> list[nn.Module]:
    encoder = getattr(model, "encoder", None)
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if stack is None:
        raise ShipyardError(
            "structured pruning supports BERT-style encoders (encoder.encoder.layer[i]) only",
            where="optimize.structured",
        )
    return list(stack)


def prune_transformer(model: nn.Module, keep_fraction: float) -> dict[str, Any]:
    """Remove attention heads and FFN neurons in place; the same count in every layer."""
    layers = _encoder_layers(model)
    heads_before = heads_after = ffn_before = ffn_after = 0
    for layer in layers:
        att = layer.attention.self
        out = layer.attention.output.dense
        size = int(att.attention_head_size)
        n_heads = att.query.out_features // size
        q = att.query.weight.view(n_heads, size, -1)
        k = att.key.weight.view(n_heads, size, -1)
        v = att.value.weight.view(n_heads, size, -1)
        o = out.weight.view(out.out_features, n_heads, size)
        score = q.flatten(1).norm(dim=1) * k.flatten(1).norm(dim=1) + v.flatten(1).norm(dim=1) * o.permute(
            1, 0, 2
        ).flatten(1).norm(dim=1)
        heads = _keep(score, keep_fraction)
        rows = (heads[:, None] * size + torch.arange(size)[None, :]).reshape(-1)
        for name in ("query", "key", "value"):
            setattr(att, name, _slice_linear(getattr(att, name), rows=rows))
        layer.attention.output.dense = _slice_linear(out, cols=rows)
        # the attention forward reshapes with -1 heads, but keep the module's bookkeeping truthful
        if hasattr(att, "num_attention_heads"):
            att.num_attention_heads = len(heads)
        if hasattr(att, "all_head_size"):
            att.all_head_size = len(heads) * size
        heads_before += n_heads
        heads_after += len(heads)

        inter, down = layer.intermediate.dense, layer.output.dense
        neurons = _keep(inter.weight.norm(dim=1) * down.weight.norm(dim=0), keep_fraction)
        layer.intermediate.dense = _slice_linear(inter, rows=neurons)
        layer.output.dense = _slice_linear(down, cols=neurons)
        ffn_before += inter.out_features
        ffn_after += len(neurons)
    config = getattr(getattr(model, "encoder", None), "config", None)
    if config is not None and layers:
        config.intermediate_size = int(layers[0].intermediate.dense.out_features)
    return {
        "unit": "heads+ffn",
        "heads_before": heads_before,
        "heads_after": heads_after,
        "ffn_before": ffn_before,
        "ffn_after": ffn_after,
    }


def _slice_linear(layer: nn.Linear, *, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    w = layer.weight
    b = layer.bias
    if rows is not None:
        w = w[rows]
        b = b[rows] if b is not None else None
    if cols is not None:
        w = w[:, cols]
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None).to(w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new
