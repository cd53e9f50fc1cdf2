"""The orchestration of ``shipyard optimize``: load the run once, run each requested method, measure every result.

Every method (`shipyard.optimize.methods.REGISTRY`) and the original are measured the same way
(`shipyard.optimize.measure`): quality on the evaluation split, agreement with the original, batch-1 latency and
throughput, weights size. A method that fails (an export failing its parity check, a quantiser error) becomes a
clearly marked failed row and leaves no folder behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from shipyard.artifact import Artifact
from shipyard.config.errors import validate_section
from shipyard.config.optimize import OptimizeConfig
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json
from shipyard.optimize.context import RunContext, load_run
from shipyard.optimize.distill import StudentPlan, plan_student
from shipyard.optimize.folders import publish, remove, remove_stale_work, work_prefix
from shipyard.optimize.measure import (
    agreement,
    count_parameters,
    default_threads,
    onnx_parameters,
    ort_runner,
    ort_session,
    quality,
    run_batched,
    speed,
    torch_runner,
    torch_threads,
    weights_size,
)
from shipyard.optimize.methods import REGISTRY, MethodFailed
from shipyard.optimize.onnx_export import export_onnx, parity
from shipyard.optimize.table import SECTION_FILE, TABLE_FILE, report_section, write_section

log = logging.getLogger(__name__)

OPTIMIZED = "optimized"

__all__ = ["OPTIMIZED", "Runner", "optimize_run", "parse_config"]


def parse_config(cfg: dict[str, Any] | OptimizeConfig | None) -> OptimizeConfig:
    """Validate an ``optimize`` section; every problem becomes one ConfigError naming the field."""
    return validate_section(OptimizeConfig, cfg, where="optimize")


def optimize_run(
    run_dir: Path | str,
    cfg: dict[str, Any] | OptimizeConfig | None = None,
    *,
    prepared: Any = None,
    allow_incomplete: bool = False,
) -> dict[str, Any]:
    """Optimise a finished run; returns the trade-off table (also in ``optimized/optimize.json``).

    The rows are the run's stored splits (no data source is read again); ``prepared`` (a `PreparedData`) skips
    reading them when the caller already holds them. The returned dict carries the report section under
    ``"section"`` (a `ReportSection`, not written to the JSON file).
    ``allow_incomplete`` is for the pipeline, which optimises before its run is complete.
    """
    config = parse_config(cfg)
    run_dir = Path(run_dir)
    ctx = load_run(run_dir, prepared=prepared, allow_incomplete=allow_incomplete)
    threads = config.threads or default_threads()
    plan = None
    if "distill" in config.methods:
        # a bad student is bad input: refuse it before spending minutes on the other methods
        plan = plan_student(ctx.teacher(), ctx.model_type, ctx.model_params, ctx.spec, ctx.target_scale, config.student)
    out_root = run_dir / OPTIMIZED
    out_root.mkdir(parents=True, exist_ok=True)
    remove_stale_work(out_root)
    started = time.perf_counter()
    runner = Runner(ctx, config, threads, out_root, plan)
    try:
        rows = [runner.baseline()]
        for method in dict.fromkeys(config.methods):  # in order, each once
            rows.append(runner.run_method(method))
    finally:
        runner.close()
    table = {
        "run": str(run_dir),
        "task": ctx.task,
        "model_type": ctx.model_type,
        "metric": rows[0]["metric"],
        "evaluated_on": runner.eval_name,
        "eval_rows": len(runner.eval.target),
        "threads": threads,
        "config": config.model_dump(mode="json"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    atomic_write_json(out_root / TABLE_FILE, table)
    section = report_section(table)
    write_section(out_root / SECTION_FILE, section, table, run_name=run_dir.name)
    log.info("optimisation table written to %s", out_root / TABLE_FILE)
    return {**table, "section": section}


class Runner:
    """Runs the methods against one loaded run and measures each result the same way (the methods' `Bench`)."""

    def __init__(
        self, ctx: RunContext, cfg: OptimizeConfig, threads: int, out_root: Path, plan: StudentPlan | None = None
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.threads = threads
        self.out_root = out_root
        self.plan = plan
        self.eval = ctx.eval_split()
        self.eval_name = next(k for k, v in ctx.prepared.splits.items() if v is self.eval)
        self.value_scale = ctx.target_scale[1] if ctx.target_scale else 1.0
        if ctx.task == "regression" and not ctx.target_scale:  # trees learn the target in its own units
            self.value_scale = float(np.std(self.eval.target)) or 1.0
        with torch_threads(threads):
            self.reference: np.ndarray = run_batched(torch_runner(ctx.artifact.model), self.eval.inputs)
        self.base: dict[str, Any] = {}
        self._fp32: tuple[Path, dict[str, Any], str] | None = None
        self._scratch: Path | None = None

    # ------------------------------------------------------------------ measuring
    def _measure(self, row: dict[str, Any], run: Any, outputs: np.ndarray) -> dict[str, Any]:
        row.update(quality(self.ctx.task, self.eval.target, outputs, self.ctx.labels))
        row["agreement"] = agreement(self.ctx.task, self.reference, outputs)
        row.update(speed(run, self.eval.inputs, repeats=self.cfg.latency_repeats, threads=self.threads))
        if self.base:
            base = self.base
            if row["value"] is not None and base["value"] is not None:
                row["delta"] = round(row["value"] - base["value"], 6)
            row["size_ratio"] = round(base["size_bytes"] / max(row["size_bytes"], 1), 3)
            row["speedup_p50"] = round(base["latency_p50_ms"] / max(row["latency_p50_ms"], 1e-9), 3)
            row["throughput_ratio"] = round(row["throughput_rows_s"] / max(base["throughput_rows_s"], 1e-9), 3)
        return row

    def baseline(self) -> dict[str, Any]:
        """The original model's row, which every other row is compared with."""
        model = self.ctx.artifact.model
        row: dict[str, Any] = {
            "method": "original",
            "variant": "torch fp32 eager",
            "status": "ok",
            "backend": "torch",
            "path": "model",
            "size_bytes": weights_size(self.ctx.model_dir),
            "parameters": count_parameters(model),
            "notes": [],
        }
        self._measure(row, torch_runner(model), self.reference)
        row.update({"delta": 0.0, "size_ratio": 1.0, "speedup_p50": 1.0, "throughput_ratio": 1.0})
        self.base = row
        return row

    def _measure_artifact(self, row: dict[str, Any], folder: Path) -> dict[str, Any]:
        """Load the written folder exactly as a server would, check it predicts, then measure it."""
        art = Artifact.load(folder)
        frame = getattr(self.eval, "frame", None)
        if frame is not None and len(frame):
            art.predict_frame(frame.head(4))  # the served path works (preprocessing included)
        if art.backend == "onnx":
            path = folder / art.meta.get("onnx_file", "model.onnx")
            run = ort_runner(ort_session(path, self.threads))
            row.setdefault("parameters", onnx_parameters(path))
        else:
            run = torch_runner(art.model)
            row.setdefault("parameters", count_parameters(art.model))
        with torch_threads(self.threads):
            outputs = run_batched(run, self.eval.inputs)
        row["backend"] = art.backend
        row["path"] = str(folder.relative_to(self.ctx.run_dir))
        row["size_bytes"] = weights_size(folder)
        return self._measure(row, run, outputs)

    # ------------------------------------------------------------------ methods
    def run_method(self, method: str) -> dict[str, Any]:
        """One method's row: its artifact published in ``optimized/<method>/`` and measured, or a failed row."""
        row: dict[str, Any] = {"method": method, "status": "ok", "notes": []}
        work = Path(tempfile.mkdtemp(prefix=f"{work_prefix()}{method}-", dir=self.out_root))
        dest = self.out_root / method
        tick = time.perf_counter()
        try:
            folder = REGISTRY[method](self, row, work)
            self._measure_artifact(row, publish(folder, dest))
        except (MethodFailed, ShipyardError) as exc:
            row.update(status="failed", error=str(exc))
            remove(dest)  # a stale folder from an earlier success must not pass for this run's result
            log.warning("optimize %s failed: %s", method, exc)
        except Exception as exc:  # one method's crash must not lose the other rows
            log.exception("optimize %s crashed", method)
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
            remove(dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        row["seconds"] = round(time.perf_counter() - tick, 1)
        if row["status"] == "failed":
            row["notes"].insert(0, "FAILED: no artifact written")
        return row

    def export(self, model: nn.Module, path: Path, row: dict[str, Any]) -> dict[str, Any]:
        """Export ``model`` to ONNX and check it against torch; ``passed`` says whether it may ship."""
        if getattr(model, "native_backend", None) == "lightgbm":  # trees: onnxmltools' TreeEnsemble operators
            from shipyard.optimize.tree_onnx import export_tree

            export_tree(model, path, self.eval.inputs["x"])
            row["exporter"] = "onnxmltools"
        else:
            row["exporter"] = export_onnx(model, self.eval.inputs, path, exporter=self.cfg.exporter)
        check = parity(
            model,
            path,
            self.eval.inputs,
            task=self.ctx.task,
            threads=self.threads,
            value_scale=self.value_scale,
            reference=self.reference if model is self.ctx.artifact.model else None,
        )
        check["tolerance"] = self.cfg.parity_tolerance
        check["passed"] = bool(check["max_abs_diff_scaled"] <= self.cfg.parity_tolerance) and (
            check["top1_agreement"] is None or check["top1_agreement"] >= 1.0 - 1e-9
        )
        return check

    def fp32_export(self, row: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """The original model's fp32 export, done once and shared by `onnx` and `int8` (exports take seconds)."""
        if self._fp32 is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"{work_prefix()}export-", dir=self.out_root))
            path = self._scratch / "fp32.onnx"
            probe: dict[str, Any] = {}
            check = self.export(self.ctx.artifact.model, path, probe)
            self._fp32 = (path, check, probe["exporter"])
        path, check, exporter = self._fp32
        row["exporter"] = exporter
        return path, dict(check)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
