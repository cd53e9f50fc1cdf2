"""Export any shipyard model (linear, MLP, CNN, transformer, regression-wrapped) to ONNX, and check it.

Exporter choice (torch 2.13): both exporters work here. The dynamo exporter (``torch.export`` + onnxscript) is
torch's default and the maintained path, and it handles Hugging Face BERT-style encoders with SDPA attention
and dynamic batch / sequence axes; the TorchScript exporter still exists but is deprecated. ``auto`` therefore
tries dynamo first and falls back to TorchScript only when dynamo fails, recording which one produced the file.

Transformer encoders get one more option, ``fused``, which ``auto`` tries first for them: a TorchScript export
with eager attention, rewritten by ONNX Runtime's transformer optimizer into its fused CPU kernels (Attention,
EmbedLayerNormalization, SkipLayerNormalization, BiasGelu). ONNX Runtime only recognises the attention pattern
of that export (the dynamo graph's SDPA decomposition stays as 50-odd small ops per layer), and the fused graph
runs a 6-layer MiniLM in about a third of the nodes (91 against 320). When fusion finds no attention block, or
the fused graph disagrees with torch on the trace rows, ``auto`` falls back to dynamo.

Every export is followed by a parity check over the evaluation split: the largest absolute difference between
the torch and ONNX Runtime outputs, and their top-1 agreement. A file that fails it never becomes an artifact.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from shipyard.errors import ShipyardError
from shipyard.optimize.measure import agreement, max_abs_diff, ort_runner, ort_session, run_batched, torch_runner

log = logging.getLogger(__name__)

Exporter = Literal["auto", "dynamo", "torchscript", "fused"]
DYNAMO_OPSET = 18
TORCHSCRIPT_OPSET = 17
OUTPUT_NAME = "logits"


class _DenseInput(nn.Module):
    """Explicit ``forward(x)``: exporters trace positional signatures, while shipyard models take ``**inputs``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x=x)


class _TextInput(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask)


def sample_inputs(inputs: dict[str, np.ndarray], rows: int = 4) -> dict[str, torch.Tensor]:
    """A few real rows to trace with: at least 2, so the batch axis is not specialised to a constant 1."""
    n = len(next(iter(inputs.values())))
    idx = np.arange(min(rows, n))
    if len(idx) < 2:
        idx = np.zeros(2, dtype=int)
    part = {k: np.ascontiguousarray(v[idx]) for k, v in inputs.items()}
    if "attention_mask" in part:
        width = max(int(part["attention_mask"].sum(axis=1).max()), 2)
        part = {k: np.ascontiguousarray(v[:, :width]) for k, v in part.items()}
    return {k: torch.from_numpy(v) for k, v in part.items()}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters warn at length about things that do not matter here (deprecations, missing torchvision)."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "torch.fx")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def export_onnx(model: nn.Module, inputs: dict[str, np.ndarray], path: Path, *, exporter: Exporter = "auto") -> str:
    """Write ``model`` to ``path`` (one self-contained file) with dynamic batch (and sequence) axes.

    Returns the exporter that produced the file. Raises ShipyardError when every exporter tried fails.
    """
    model = model.eval()
    text = "attention_mask" in inputs
    wrapped: nn.Module = _TextInput(model) if text else _DenseInput(model)
    wrapped.eval()
    sample = sample_inputs(inputs)
    names = ["input_ids", "attention_mask"] if text else ["x"]
    encoder_config = _encoder_config(model)
    if exporter == "fused" and encoder_config is None:
        raise ShipyardError("exporter 'fused' needs a transformer encoder", where="optimize.exporter")
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    if exporter == "auto" and encoder_config is not None:
        order.insert(0, "fused")
    errors = []
    for name in order:
        try:
            with _quiet(), torch.no_grad():
                if name == "dynamo":
                    _export_dynamo(wrapped, sample, names, path)
                elif name == "torchscript":
                    _export_torchscript(wrapped, sample, names, path)
                else:
                    _export_fused(wrapped, sample, names, path, encoder_config)
            return name
        except Exception as exc:  # an exporter's failure is data for the table, not a crash
            log.warning("ONNX export with %s failed: %s", name, str(exc).splitlines()[0][:300] if str(exc) else exc)
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            Path(path).unlink(missing_ok=True)
    raise ShipyardError("ONNX export failed (" + "; ".join(errors) + ")", where="optimize.onnx")


def _export_dynamo(model: nn.Module, sample: dict[str, torch.Tensor], names: list[str], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    shapes: dict[str, Any] = {"x": {0: batch}}
    if "input_ids" in names:
        seq = torch.export.Dim("sequence", min=1, max=1 << 16)
        shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    program = torch.onnx.export(
        model,
        (),
        kwargs=sample,
        input_names=names,
        output_names=[OUTPUT_NAME],
        opset_version=DYNAMO_OPSET,
        dynamo=True,
        dynamic_shapes=shapes,
        external_data=False,
        verbose=False,
    )
    if program is not None:  # older torch wrote the file itself; 2.x returns an ONNXProgram
        program.save(str(path), external_data=False)


def _export_torchscript(model: nn.Module, sample: dict[str, torch.Tensor], names: list[str], path: Path) -> None:
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
    if "input_ids" in names:
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[OUTPUT_NAME] = {0: "batch"}
    torch.onnx.export(
        model,
        tuple(sample[n] for n in names),
        str(path),
        input_names=names,
        output_names=[OUTPUT_NAME],
        opset_version=TORCHSCRIPT_OPSET,
        dynamic_axes=axes,
        do_constant_folding=True,
        dynamo=False,
    )


def _encoder_config(model: nn.Module) -> Any:
    """The Hugging Face config of a BERT-style encoder inside ``model`` (shipyard's transformer family), or None."""
    for module in model.modules():  # also finds the encoder inside a regression wrapper
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "num_attention_heads") and hasattr(config, "hidden_size"):
            return config
    return None


@contextlib.contextmanager
def _eager_attention(model: nn.Module) -> Iterator[None]:
    """Trace the encoder with its plain (matmul-softmax-matmul) attention, the form the fusion recognises."""
    configs = {id(c): c for m in model.modules() if (c := getattr(m, "config", None)) is not None}
    before = {k: getattr(c, "_attn_implementation", None) for k, c in configs.items()}
    for c in configs.values():
        c._attn_implementation = "eager"
    try:
        yield
    finally:
        for k, c in configs.items():
            c._attn_implementation = before[k]


def _export_fused(model: nn.Module, sample: dict[str, torch.Tensor], names: list[str], path: Path, config: Any) -> None:
    # onnxruntime's transformer graph optimiser is heavy and only the `fused` exporter needs it
    from onnxruntime.transformers.optimizer import optimize_model

    raw = path.with_suffix(".unfused.onnx")
    try:
        with _eager_attention(model):
            _export_torchscript(model, sample, names, raw)
        fused = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # graph-level fusions only; ONNX Runtime applies its own optimisations at load
        )
        stats = fused.get_fused_operator_statistics()
        if not (stats.get("Attention") or stats.get("MultiHeadAttention")):
            raise RuntimeError(f"the transformer optimizer found no attention block to fuse ({stats})")
        fused.save_model_to_file(str(path))
    finally:
        raw.unlink(missing_ok=True)
    # fusion rewrites arithmetic (the attention mask, GELU, layer norms): check it on the trace rows before use
    session = ort_session(path, 1)
    with torch.inference_mode():
        ref = model(**sample).float().numpy()
    out = ort_runner(session)({k: v.numpy() for k, v in sample.items()})
    if max_abs_diff(ref, out) > 1e-3:
        raise RuntimeError(f"the fused graph differs from torch by {max_abs_diff(ref, out):.2e} on the trace rows")


def parity(
    model: nn.Module,
    onnx_path: Path,
    inputs: dict[str, np.ndarray],
    *,
    task: str,
    threads: int,
    value_scale: float = 1.0,
    reference: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare torch and ONNX Runtime outputs over ``inputs``.

    ``value_scale`` (a regression target's standard deviation) puts value differences on the standardised
    scale, so one tolerance serves targets measured in units or in hundreds of thousands.
    """
    ref = reference if reference is not None else run_batched(torch_runner(model), inputs)
    session = ort_session(onnx_path, threads)
    out = run_batched(ort_runner(session), inputs)
    diff = max_abs_diff(ref, out)
    return {
        "max_abs_diff": diff,
        "max_abs_diff_scaled": diff / value_scale if value_scale else diff,
        "top1_agreement": agreement(task, ref, out),
        "rows": len(ref),
    }
