"""ONNX export of a tree model (LightGBM) through ``onnxmltools``, with the same output as every other export.

``onnxmltools`` turns a booster into ONNX-ML ``TreeEnsemble`` operators (categorical splits become chains of
equality branches). Its classifier graph outputs a label and probabilities; shipyard's ONNX artifacts output one
tensor, ``logits``, that a softmax turns into probabilities, so the graph gets ``Log(max(p, tiny))`` appended
(softmax of log-probabilities is the probabilities) and only that output kept. A regressor's values are the
output as they are. The input is ``x``, float32 (N, F), as for the torch families.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_bytes

log = logging.getLogger(__name__)

OUTPUT_NAME = "logits"
INPUT_NAME = "x"
OPSET = 15  # the highest default-domain opset onnxmltools' LightGBM converter supports here
TINY = 1e-30  # floor before the log: a probability of exactly 0 would give -inf


def tree_to_onnx(model: Any) -> Any:
    """The ONNX ``ModelProto`` of a trained :class:`shipyard.models.trees.TreeModel`."""
    # onnxmltools and onnx are heavy and only the export needs them
    import onnx
    import onnxmltools
    from onnx import TensorProto, helper
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = model.booster
    if booster is None:
        raise ShipyardError("the tree model has not been trained; nothing to export", where="model")
    n_features = int(booster.num_feature())
    try:
        proto = onnxmltools.convert_lightgbm(
            booster,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            zipmap=False,
            target_opset=OPSET,
        )
    except Exception as exc:  # the converter raises plain RuntimeError / NotImplementedError
        raise ShipyardError(f"onnxmltools could not convert the LightGBM model: {exc}", where="model") from None
    graph = proto.graph
    outputs = {o.name: o for o in graph.output}
    if model.spec.task == "regression":
        (name,) = list(outputs)
        graph.node.append(helper.make_node("Identity", [name], [OUTPUT_NAME]))
        del graph.output[:]
        graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1]))
    else:
        prob = "probabilities" if "probabilities" in outputs else list(outputs)[-1]
        floor = helper.make_tensor("shipyard_tiny", TensorProto.FLOAT, [], [TINY])
        graph.initializer.append(floor)
        graph.node.append(helper.make_node("Max", [prob, "shipyard_tiny"], ["shipyard_floored"]))
        graph.node.append(helper.make_node("Log", ["shipyard_floored"], [OUTPUT_NAME]))
        del graph.output[:]
        width = model.spec.n_outputs
        graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, width]))
    onnx.checker.check_model(proto)
    return proto


def export_tree(model: Any, path: Path, probe: np.ndarray) -> dict[str, Any]:
    """Write ``path`` (atomically) and check it against the booster on ``probe`` rows: the largest probability
    (classification) or value (regression) difference, and top-1 agreement. A file that disagrees is not kept."""
    import onnxruntime as ort

    proto = tree_to_onnx(model)
    data = proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    probe = np.asarray(probe, dtype=np.float32)
    got = np.asarray(session.run(None, {INPUT_NAME: probe})[0], dtype=np.float64)
    want = model.raw_scores(probe).astype(np.float64)
    if model.spec.task == "classification":
        got, want = _softmax(got), _softmax(want)
        agree = float((got.argmax(1) == want.argmax(1)).mean()) if len(probe) else 1.0
    else:
        agree = 1.0
    diff = float(np.abs(got - want).max()) if len(probe) else 0.0
    # TreeEnsemble sums in float32, LightGBM in float64: allow float32 rounding over a few thousand trees
    if diff > 1e-3 or agree < 0.999:
        raise ShipyardError(
            f"the ONNX tree model disagrees with LightGBM (max difference {diff:.2e}, top-1 agreement {agree:.4f})",
            where=str(path),
        )
    atomic_write_bytes(Path(path), data)
    log.info("tree model exported to ONNX: %s (max difference %.2e)", path, diff)
    return {"exporter": "onnxmltools", "opset": OPSET, "max_abs_diff": diff, "top1_agreement": agree}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
