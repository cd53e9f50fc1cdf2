"""Measure a model the same way whatever its backend: size on disk, parameters, speed, quality, agreement.

Speed is measured under a fixed thread count (``torch.set_num_threads`` for torch, ``intra_op_num_threads`` for
ONNX Runtime) so backends compete on equal terms, after a warm-up (first calls allocate, JIT and pick kernels),
and repeated, reporting percentiles rather than a single noisy call. Batch-1 latency feeds single rows the way a
server sees them: a text row is trimmed to its own length instead of the batch's padding.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from shipyard.evaluation.metrics import compute_metrics

log = logging.getLogger(__name__)

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]
WEIGHT_FILES = (".safetensors", ".onnx", ".data")
PREPROCESSOR_FILES = {"preprocessor.safetensors"}
NATIVE_MODEL_FILES = {"model.txt"}  # a tree model's own format (LightGBM)


def default_threads() -> int:
    # Latency is compared at a fixed, modest thread count: the figure should not depend on how busy the host is.
    return max(1, min(4, os.cpu_count() or 1))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_runner(model: nn.Module) -> Runner:
    model = model.eval()

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
            return model(**tensors).float().numpy()

    return run


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort  # heavy (a second or so, and its thread pools): loaded once an ONNX model runs

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def ort_runner(session: Any) -> Runner:
    names = [i.name for i in session.get_inputs()]

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(None, {n: inputs[n] for n in names})[0], dtype=np.float32)

    return run


def run_batched(runner: Runner, inputs: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
    n = len(next(iter(inputs.values())))
    chunks = []
    for start in range(0, n, batch_size):
        part = {k: v[start : start + batch_size] for k, v in inputs.items()}
        if "attention_mask" in part:
            part = _trim(part)
        chunks.append(runner(part))
    return np.concatenate(chunks) if chunks else np.zeros((0, 1), dtype=np.float32)


def _trim(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop padding columns that no row in this batch uses (a server batches rows of their own length)."""
    mask = part["attention_mask"]
    used = np.flatnonzero(mask.any(axis=0))
    width = int(used[-1]) + 1 if len(used) else 1
    return {k: np.ascontiguousarray(v[:, :width]) for k, v in part.items()}


def _rows(inputs: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    part = {k: np.ascontiguousarray(v[idx]) for k, v in inputs.items()}
    return _trim(part) if "attention_mask" in part else part


def speed(
    runner: Runner, inputs: dict[str, np.ndarray], *, repeats: int, threads: int, warmup: int = 10
) -> dict[str, float]:
    """Batch-1 latency p50 / p95 (ms) over ``repeats`` rows and batch-32 throughput (rows/s)."""
    n = len(next(iter(inputs.values())))
    rng = np.random.default_rng(0)
    rows = rng.integers(0, n, size=repeats)
    with torch_threads(threads):
        # warm up for a number of calls and a minimum time: the first calls allocate, pick kernels and wake
        # thread pools, and on a shared host one slow call can otherwise dominate a short run
        started, calls = time.perf_counter(), 0
        while calls < warmup or time.perf_counter() - started < 0.2:
            runner(_rows(inputs, rng.integers(0, n, size=1)))
            calls += 1
        times = []
        for r in rows:
            feed = _rows(inputs, np.array([r]))
            tick = time.perf_counter()
            runner(feed)
            times.append(time.perf_counter() - tick)
        batch = min(32, n)
        batches = max(5, repeats // 10)
        feeds = [_rows(inputs, rng.integers(0, n, size=batch)) for _ in range(batches + 2)]
        for feed in feeds[:2]:  # warm-up at the new shape
            runner(feed)
        tick = time.perf_counter()
        for feed in feeds[2:]:
            runner(feed)
        elapsed = time.perf_counter() - tick
    ms = np.asarray(times) * 1000.0
    return {
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 4),
        "latency_p95_ms": round(float(np.percentile(ms, 95)), 4),
        "throughput_rows_s": round(batch * batches / max(elapsed, 1e-9), 1),
    }


def weights_size(folder: Path) -> int:
    """Bytes of the model weights (safetensors / ONNX / external data), not the preprocessor or tokenizer."""
    total = 0
    for path in Path(folder).iterdir():
        weights = path.suffix in WEIGHT_FILES and path.name not in PREPROCESSOR_FILES
        if path.is_file() and (weights or path.name in NATIVE_MODEL_FILES):
            total += path.stat().st_size
    return total


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_nonzero(model: nn.Module) -> int:
    return int(sum(int(torch.count_nonzero(p)) for p in model.parameters()))


def onnx_parameters(path: Path) -> int:
    """Elements of the float / integer weight initialisers (quantisation scales and zero points excluded)."""
    model = onnx.load(str(path), load_external_data=False)
    total = 0
    for init in model.graph.initializer:
        if init.name.endswith(("_scale", "_zero_point")):
            continue
        dims = list(init.dims)
        if dims:
            total += int(np.prod(dims))
        else:
            total += int(numpy_helper.to_array(init).size) if not init.external_data else 0
    return total


def primary_metric(task: str) -> tuple[str, bool]:
    """The metric the table leads with and whether higher is better."""
    return ("accuracy", True) if task == "classification" else ("rmse", False)


def quality(task: str, target: np.ndarray, outputs: np.ndarray, labels: list[str] | None) -> dict[str, Any]:
    metrics = compute_metrics(task, target, outputs if task == "classification" else outputs.reshape(-1), labels)
    name, _ = primary_metric(task)
    return {"metric": name, "value": _num(metrics.get(name))}


def agreement(task: str, reference: np.ndarray, outputs: np.ndarray) -> float | None:
    """Top-1 agreement with the original (classification); None for regression."""
    if task != "classification" or len(reference) == 0:
        return None
    return round(float((reference.argmax(axis=1) == outputs.argmax(axis=1)).mean()), 6)


def max_abs_diff(reference: np.ndarray, outputs: np.ndarray) -> float:
    if reference.size == 0:
        return 0.0
    return float(np.max(np.abs(reference.astype(np.float64) - outputs.reshape(reference.shape).astype(np.float64))))


def _num(value: Any) -> float | None:
    if isinstance(value, int | float | np.floating):
        return round(float(value), 6)
    return None
