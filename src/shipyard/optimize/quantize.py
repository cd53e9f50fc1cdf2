"""int8 with ONNX Runtime's quantisation tools.

- Dense and transformer models: dynamic quantisation (weights stored int8, activations quantised on the fly per
  batch). It needs no calibration data, and the matrix multiplies dominate these models' time.
- CNNs: static QDQ quantisation with per-channel weight scales, activations calibrated on a sample of the
  training split. Convolutions only run as integer kernels when their activation ranges are known beforehand,
  which dynamic quantisation cannot give them.

ONNX Runtime's dynamic quantiser only rewrites ``MatMul``; exporters emit ``Gemm`` for a 2-D ``nn.Linear``, so
those are rewritten to ``MatMul`` + ``Add`` first (same arithmetic).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)


def gemm_to_matmul(src: Path, dst: Path) -> int:
    """Rewrite each plain ``Gemm`` (alpha = beta = 1, no transA, constant B) as ``MatMul`` + ``Add``.

    Returns how many nodes were rewritten."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = []
    changed = 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            node.op_type == "Gemm"
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
            and not attrs.get("transA", 0)
            and node.input[1] in inits
        )
        if not plain:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        new_name = f"{node.input[1]}_kn"
        graph.initializer.append(numpy_helper.from_array(weight, new_name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}_mm" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], new_name], [mm_out], name=f"{node.name}_MatMul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_Add"))
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {i for n in graph.node for i in n.input}
        keep = [i for i in graph.initializer if i.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    onnx.save(model, str(dst))
    return changed


def _preprocess(src: Path, dst: Path) -> Path:
    """Shape inference + graph optimisation before quantising; falls back to the raw graph when it fails."""
    # onnxruntime's quantisation tooling is heavy (it pulls in sympy): loaded only when a model is quantised
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # symbolic shape inference drops a scratch file (sym_shape_infer_temp.onnx) into the working directory
    with contextlib.chdir(dst.parent):
        return _preprocess_here(src, dst, quant_pre_process)


def _preprocess_here(src: Path, dst: Path, quant_pre_process: Any) -> Path:
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        return dst
    except Exception as exc:  # symbolic shape inference does not know every op; quantising still works without
        log.info("quant_pre_process skipped (%s); quantising the graph as exported", str(exc)[:200])
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
            return dst
        except Exception:
            return src


def quantize_dynamic_int8(fp32: Path, out: Path, work: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic  # heavy: see _preprocess

    plain = work / "gemm_free.onnx"
    rewritten = gemm_to_matmul(fp32, plain)
    pre = _preprocess(plain, work / "pre.onnx")
    quantize_dynamic(
        str(pre),
        str(out),
        weight_type=QuantType.QInt8,
        # one scale per output channel: on the SST-2 MiniLM run per-tensor scales lost 1.5 accuracy points,
        # per-channel ones none (0.8956 -> 0.8991), at the same size
        per_channel=True,
        # activation x activation products (attention scores) stay float: quantising them costs accuracy
        # fused transformer graphs carry contrib ops (Attention, SkipLayerNormalization) whose outputs shape
        # inference cannot type; every such tensor is float here
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1},
    )
    return {"scheme": "dynamic", "weights": "QInt8", "gemm_rewritten": rewritten, "preprocessed": pre != plain}


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over a fixed sample of training inputs."""

    def __init__(self, inputs: dict[str, np.ndarray], batch: int = 32) -> None:
        n = len(next(iter(inputs.values())))
        self._feeds = [
            {k: np.ascontiguousarray(v[s : s + batch]) for k, v in inputs.items()} for s in range(0, n, batch)
        ]
        self._pos = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._pos >= len(self._feeds):
            return None
        self._pos += 1
        return self._feeds[self._pos - 1]

    def rewind(self) -> None:
        self._pos = 0


def quantize_static_int8(fp32: Path, out: Path, work: Path, calibration: dict[str, np.ndarray]) -> dict[str, Any]:
    from onnxruntime.quantization import (  # heavy: see _preprocess
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader_cls = type("CalibrationReader", (_Calibration, CalibrationDataReader), {})
    pre = _preprocess(fp32, work / "pre.onnx")
    quantize_static(
        str(pre),
        str(out),
        reader_cls(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    n = len(next(iter(calibration.values())))
    return {
        "scheme": "static QDQ",
        "weights": "QInt8 per-channel",
        "activations": "QUInt8",
        "calibration_rows": n,
        "preprocessed": pre != fp32,
    }
