"""shipyard optimize: smaller and faster versions of a finished run's model, with the trade-offs measured.

``optimize_run(run_dir, cfg)`` reads the run's model (``run_dir/model``) and data, applies each requested method
and writes every result as an ordinary artifact folder, ``run_dir/optimized/<method>/``, that
``Artifact.load(...).predict_frame(...)`` serves like the original:

- ``onnx``: the fp32 model exported to ONNX (ONNX Runtime backend), checked for parity with torch;
- ``int8``: ONNX Runtime quantisation, dynamic for dense / transformer models, static QDQ for CNNs;
- ``prune``: global magnitude pruning (``structured: false``) or removal of whole neurons / channels / heads
  (``structured: true``), each followed by a short fine-tune;
- ``distill``: a smaller student trained on the teacher's soft labels.

Every method and the original are then measured the same way (`shipyard.optimize.measure`) and the trade-off
table is written to ``run_dir/optimized/optimize.json`` and rendered as an HTML report section
(``optimize_section.html``). A method that fails (an export failing its parity check, a quantiser error) becomes a
clearly marked failed row and leaves no folder behind: each artifact is written to a temporary folder and renamed
into place only once it has passed its checks.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.errors import validate_section
from shipyard.config.optimize import METHODS, OptimizeConfig
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json, atomic_write_text
from shipyard.store.liveness import process_alive

log = logging.getLogger(__name__)

OPTIMIZED = "optimized"
TABLE_FILE = "optimize.json"
SECTION_FILE = "optimize_section.html"

__all__ = ["METHODS", "OptimizeConfig", "format_table", "optimize_run", "parse_config", "report_section"]


def parse_config(cfg: dict[str, Any] | OptimizeConfig | None) -> OptimizeConfig:
    """Validate an ``optimize`` section; every problem becomes one ConfigError naming the field."""
    return validate_section(OptimizeConfig, cfg, where="optimize")


def optimize_run(
    run_dir: Path | str,
    cfg: dict[str, Any] | OptimizeConfig | None = None,
    *,
    base_dir: Path | None = None,
    prepared: Any = None,
    allow_incomplete: bool = False,
) -> dict[str, Any]:
    """Optimise a finished run; returns the trade-off table (also in ``optimized/optimize.json``).

    The rows are the run's stored splits; only image runs (which store none) re-read their sources, with
    ``base_dir`` resolving relative data paths (default: the job file's folder recorded at training time);
    ``prepared`` (a `PreparedData`) skips re-reading the data when the caller already holds it. The returned
    dict carries the report section under ``"section"`` (a `ReportSection`, not written to the JSON file).
    ``allow_incomplete`` is for the pipeline, which optimises before its run is complete.
    """
    from shipyard.optimize.context import load_run
    from shipyard.optimize.measure import default_threads

    config = parse_config(cfg)
    run_dir = Path(run_dir)
    ctx = load_run(run_dir, base_dir=base_dir, prepared=prepared, allow_incomplete=allow_incomplete)
    threads = config.threads or default_threads()
    plan = None
    if "distill" in config.methods:
        from shipyard.optimize.distill import plan_student

        # a bad student is bad input: refuse it before spending minutes on the other methods
        plan = plan_student(ctx.teacher(), ctx.model_type, ctx.model_params, ctx.spec, ctx.target_scale, config.student)
    out_root = run_dir / OPTIMIZED
    out_root.mkdir(parents=True, exist_ok=True)
    remove_stale_work(out_root)
    started = time.perf_counter()
    runner = _Runner(ctx, config, threads, out_root)
    try:
        rows = [runner.baseline()]
        for method in dict.fromkeys(config.methods):  # in order, each once
            rows.append(runner.run_method(method, plan))
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
    atomic_write_text(out_root / SECTION_FILE, _standalone_html(section))
    log.info("optimisation table written to %s", out_root / TABLE_FILE)
    return {**table, "section": section}


class _Runner:
    """Runs the methods against one loaded run and measures each result the same way."""

    def __init__(self, ctx: Any, cfg: OptimizeConfig, threads: int, out_root: Path) -> None:
        from shipyard.optimize.measure import run_batched, torch_runner

        self.ctx = ctx
        self.cfg = cfg
        self.threads = threads
        self.out_root = out_root
        self.eval = ctx.eval_split()
        self.eval_name = next(k for k, v in ctx.prepared.splits.items() if v is self.eval)
        self.value_scale = ctx.target_scale[1] if ctx.target_scale else 1.0
        from shipyard.optimize.measure import torch_threads

        with torch_threads(threads):
            self.reference = run_batched(torch_runner(ctx.artifact.model), self.eval.inputs)
        self.base: dict[str, Any] = {}
        self._fp32: tuple[Path, dict[str, Any], str] | None = None
        self._scratch: Path | None = None

    # ------------------------------------------------------------------ measuring
    def _measure(self, row: dict[str, Any], run: Any, outputs: np.ndarray) -> dict[str, Any]:
        from shipyard.optimize.measure import agreement, quality, speed

        q = quality(self.ctx.task, self.eval.target, outputs, self.ctx.labels)
        row.update(q)
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
        from shipyard.optimize.measure import count_parameters, torch_runner, weights_size

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
        from shipyard.artifact import Artifact
        from shipyard.optimize.measure import (
            count_parameters,
            onnx_parameters,
            ort_runner,
            ort_session,
            run_batched,
            torch_runner,
            torch_threads,
            weights_size,
        )

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
    def run_method(self, method: str, plan: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"method": method, "status": "ok", "notes": []}
        work = Path(tempfile.mkdtemp(prefix=f"{_work_prefix()}{method}-", dir=self.out_root))
        dest = self.out_root / method
        tick = time.perf_counter()
        try:
            folder = getattr(self, f"_m_{method}")(row, work, plan)
            final = _publish(folder, dest)
            self._measure_artifact(row, final)
        except _Failed as exc:
            row.update(status="failed", error=str(exc))
            _remove(dest)  # a stale folder from an earlier success must not pass for this run's result
            log.warning("optimize %s failed: %s", method, exc)
        except ShipyardError as exc:
            row.update(status="failed", error=str(exc))
            _remove(dest)
            log.warning("optimize %s failed: %s", method, exc)
        except Exception as exc:  # one method's crash must not lose the other rows
            log.exception("optimize %s crashed", method)
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
            _remove(dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        row["seconds"] = round(time.perf_counter() - tick, 1)
        if row["status"] == "failed":
            row["notes"].insert(0, "FAILED: no artifact written")
        return row

    def _export(self, model: Any, path: Path, row: dict[str, Any]) -> dict[str, Any]:
        from shipyard.optimize.onnx_export import export_onnx, parity

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

    def _fp32_export(self, row: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """The original model's fp32 export, done once and shared by `onnx` and `int8` (exports take seconds)."""
        if self._fp32 is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"{_work_prefix()}export-", dir=self.out_root))
            path = self._scratch / "fp32.onnx"
            probe: dict[str, Any] = {}
            check = self._export(self.ctx.artifact.model, path, probe)
            self._fp32 = (path, check, probe["exporter"])
        path, check, exporter = self._fp32
        row["exporter"] = exporter
        return path, dict(check)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _m_onnx(self, row: dict[str, Any], work: Path, plan: Any) -> Path:
        onnx_path = work / "model.onnx"
        fp32, check = self._fp32_export(row)
        shutil.copy2(fp32, onnx_path)
        row["parity"] = check
        row["variant"] = "fp32 ONNX Runtime"
        if not check["passed"]:
            raise _Failed(_parity_message(check))
        return self._onnx_folder(work, onnx_path, {"method": "onnx", "parity": check, "exporter": row["exporter"]})

    def _m_int8(self, row: dict[str, Any], work: Path, plan: Any) -> Path:
        from shipyard.optimize.context import subsample
        from shipyard.optimize.measure import agreement, max_abs_diff, ort_runner, ort_session, run_batched
        from shipyard.optimize.quantize import quantize_dynamic_int8, quantize_static_int8

        fp32, check = self._fp32_export(row)
        if not check["passed"]:
            row["parity"] = check
            raise _Failed("the fp32 export to quantise failed its parity check: " + _parity_message(check))
        out = work / "model_int8.onnx"
        if self.ctx.model_type == "cnn":
            calib = subsample(self.ctx.split("train").inputs, self.cfg.calibration_samples, seed=1)
            info = quantize_static_int8(fp32, out, work, calib)
        else:
            info = quantize_dynamic_int8(fp32, out, work)
        row["variant"] = f"int8 {info['scheme']}"
        outputs = run_batched(ort_runner(ort_session(out, self.threads)), self.eval.inputs)
        agree = agreement(self.ctx.task, self.reference, outputs)
        row["parity"] = {
            "max_abs_diff": max_abs_diff(self.reference, outputs),
            "top1_agreement": agree,
            "fp32_export": check,
            "min_agreement": self.cfg.min_int8_agreement,
            "passed": agree is None or agree >= self.cfg.min_int8_agreement,
        }
        if not row["parity"]["passed"]:
            raise _Failed(f"int8 model agrees with the original on only {agree:.1%} of rows")
        final = work / "model.onnx"
        out.replace(final)
        return self._onnx_folder(work, final, {"method": "int8", **info, "parity": row["parity"]})

    def _m_prune(self, row: dict[str, Any], work: Path, plan: Any) -> Path:
        from shipyard.optimize import prune
        from shipyard.optimize.context import make_engine, validation_or_none
        from shipyard.optimize.measure import count_nonzero, count_parameters

        ctx, cfg = self.ctx, self.cfg
        model = ctx.teacher()
        before = count_parameters(model)
        params = ctx.model_params
        engine = make_engine(ctx, epochs=cfg.prune_finetune_epochs or 1, lr_scale=cfg.finetune_lr_scale)
        if cfg.structured:
            row["variant"] = f"structured {cfg.sparsity:.0%}"
            model, params, info = prune.structured_prune(
                model, ctx.model_type, params, ctx.spec, ctx.target_scale, cfg.sparsity
            )
            if cfg.prune_finetune_epochs:
                engine.fit(model, ctx.split("train"), validation_or_none(ctx), work / "finetune")
            model = model.eval()
            after = count_parameters(model)
            row["structure"] = info
            row["parameters"] = after
            row["parameter_reduction"] = round(1.0 - after / before, 4)
            row["notes"].append(f"{info['unit']} removed: {_describe_cut(info)}")
        else:
            row["variant"] = f"unstructured {cfg.sparsity:.0%}"
            prune.apply_global_magnitude(model, cfg.sparsity)
            if cfg.prune_finetune_epochs:
                engine.fit(model, ctx.split("train"), validation_or_none(ctx), work / "finetune")
            prune.make_permanent(model)
            model = model.eval()
            row["parameters"] = count_parameters(model)
            row["nonzero_parameters"] = count_nonzero(model)
            row["notes"].append(
                "unstructured sparsity: zeros are stored and multiplied like any weight, so dense kernels give "
                "no speed-up and the file is not smaller (it would compress well)"
            )
        if not cfg.structured:
            row["sparsity"] = round(prune.weight_sparsity(model), 4)
        row["finetune_epochs"] = cfg.prune_finetune_epochs
        if ctx.model_type == "transformer" and cfg.structured:
            # per-layer head counts cannot be described by the encoder config a torch artifact rebuilds from,
            # so the pruned transformer ships as ONNX (shapes live in the graph)
            onnx_path = work / "model.onnx"
            check = self._export(model, onnx_path, row)
            row["parity"] = check
            if not check["passed"]:
                raise _Failed(_parity_message(check))
            row["notes"].append("saved as ONNX: pruned head counts are not expressible in the encoder config")
            return self._onnx_folder(work, onnx_path, {"method": "prune", "structure": row.get("structure")})
        return self._torch_folder(
            work,
            model,
            params,
            {
                "method": "prune",
                "variant": row["variant"],
                "sparsity": row.get("sparsity"),
                "structure": row.get("structure"),
            },
        )

    def _m_distill(self, row: dict[str, Any], work: Path, plan: Any) -> Path:
        from shipyard.data.prepare import SplitArrays
        from shipyard.optimize.context import make_engine, validation_or_none
        from shipyard.optimize.distill import distillation_loss, pack_targets
        from shipyard.training.engine import seed_everything

        ctx, cfg = self.ctx, self.cfg
        assert plan is not None
        train = ctx.split("train")
        teacher = ctx.teacher()
        predictor = make_engine(ctx, epochs=1)
        soft = predictor.predict(teacher, train.inputs)
        packed = SplitArrays(inputs=train.inputs, target=pack_targets(soft, train.target), frame=train.frame)
        loss = distillation_loss(ctx.task, cfg.temperature, cfg.alpha, self.value_scale)
        # no augmentation: the teacher's soft labels describe the rows as they are, not augmented copies
        engine = make_engine(
            ctx,
            epochs=cfg.distill_epochs or ctx.job.training.epochs,
            loss_fn=loss,
            augment=False,
            early_stopping=True,
        )
        seed_everything(ctx.job.training.seed)
        student = plan.model
        engine.fit(student, packed, validation_or_none(ctx), work / "train")
        student = student.eval()
        row["variant"] = f"student {plan.description}"
        row["student"] = plan.description
        row["parameters"] = plan.student_parameters
        row["teacher_parameters"] = plan.teacher_parameters
        row["notes"].append(f"T={cfg.temperature}, alpha={cfg.alpha}")
        return self._torch_folder(work, student, plan.params, {"method": "distill", "student": plan.description})

    # ------------------------------------------------------------------ artifact folders
    def _copy_support_files(self, folder: Path) -> None:
        """Preprocessor, tokenizer, encoder config: everything of the original but its weights."""
        src = self.ctx.model_dir
        for path in src.iterdir():
            if path.name in ("model.safetensors", "model.onnx", "model.onnx.data"):
                continue
            target = folder / path.name
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copy2(path, target)

    def _onnx_folder(self, work: Path, onnx_path: Path, info: dict[str, Any]) -> Path:
        from shipyard.artifact import META

        folder = work / "artifact"
        folder.mkdir()
        self._copy_support_files(folder)
        shutil.copy2(onnx_path, folder / "model.onnx")
        meta = json.loads((self.ctx.model_dir / META).read_text(encoding="utf-8"))
        meta.update(
            backend="onnx",
            onnx_file="model.onnx",
            optimization=_jsonable(info),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        atomic_write_json(folder / META, meta)
        return folder

    def _torch_folder(self, work: Path, model: Any, params: dict[str, Any], info: dict[str, Any]) -> Path:
        from shipyard.artifact import save_torch_artifact

        meta = self.ctx.artifact.meta
        folder = work / "artifact"
        folder.mkdir()
        self._copy_support_files(folder)
        keep = {k: meta[k] for k in ("run_id", "config_hash", "read_options") if k in meta}
        save_torch_artifact(
            folder,
            model=model,
            preprocessor=self.ctx.artifact.preprocessor,
            task=self.ctx.task,
            model_type=self.ctx.model_type,
            model_params=params,
            input_spec=self.ctx.spec,
            features=meta["features"],
            target=meta["target"],
            labels=meta.get("labels"),
            target_scale=self.ctx.target_scale,
            metrics=meta.get("metrics"),
            extra={**keep, "optimization": _jsonable(info)},
        )
        return folder


class _Failed(Exception):
    """A method ran but its result must not ship (failed parity, too little agreement)."""


def _parity_message(check: dict[str, Any]) -> str:
    agree = check.get("top1_agreement")
    return (
        f"parity check failed: max |difference| {check['max_abs_diff_scaled']:.3g} "
        f"(tolerance {check.get('tolerance', 0):.0e})" + (f", top-1 agreement {agree:.4%}" if agree is not None else "")
    )


def _describe_cut(info: dict[str, Any]) -> str:
    if info["unit"] == "heads+ffn":
        return (
            f"heads {info['heads_before']} -> {info['heads_after']}, FFN neurons {info['ffn_before']} -> "
            f"{info['ffn_after']}"
        )
    return f"{info['before']} -> {info['after']}"


def _publish(folder: Path, dest: Path) -> Path:
    """Move a finished folder into place: rename the old one aside first so there is never a half state."""
    old = None
    if dest.exists():
        old = dest.with_name(f".old-{dest.name}-{time.time_ns()}")
        dest.rename(old)
    folder.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def _work_prefix() -> str:
    """Scratch folders are named after this process, so a rerun can tell a dead one's from a live one's."""
    return f".work-{os.getpid()}-"


def remove_stale_work(out_root: Path) -> list[Path]:
    """Remove scratch folders (``.work-*``, ``.old-*``) that a killed optimisation left behind.

    A ``.work-<pid>-`` folder whose process still runs belongs to a concurrent optimisation and is kept;
    ``.old-*`` (a published folder renamed aside) and older unnamed ``.work-*`` folders are always leftovers.
    """
    removed = []
    for path in sorted(out_root.glob(".work-*")) + sorted(out_root.glob(".old-*")):
        match = re.match(r"\.work-(\d+)-", path.name)
        if match and process_alive(int(match.group(1)), None):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        log.info("removed %d scratch folder(s) a killed optimisation left in %s", len(removed), out_root)
    return removed


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


# ---------------------------------------------------------------------------------------------------- report
_TABLE_COLUMNS = (
    "method",
    "variant",
    "status",
    "backend",
    "size_MB",
    "size_ratio",
    "parameters",
    "sparsity",
    "param_reduction",
    "latency_p50_ms",
    "latency_p95_ms",
    "speedup_p50",
    "throughput_rows_s",
    "metric_value",
    "delta",
    "agreement",
    "max_abs_diff",
    "notes",
)


def table_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows flattened for display (the HTML section and the CLI / bench printouts)."""
    out = []
    for row in table["rows"]:
        parity = row.get("parity") or {}
        notes = list(row.get("notes", []))
        if row.get("error"):
            notes.append(row["error"])
        out.append(
            {
                "method": row["method"],
                "variant": row.get("variant", ""),
                "status": row["status"],
                "backend": row.get("backend", ""),
                "size_MB": round(row["size_bytes"] / 1e6, 3) if row.get("size_bytes") else None,
                "size_ratio": row.get("size_ratio"),
                "parameters": row.get("parameters"),
                "sparsity": row.get("sparsity"),
                "param_reduction": row.get("parameter_reduction"),
                "latency_p50_ms": row.get("latency_p50_ms"),
                "latency_p95_ms": row.get("latency_p95_ms"),
                "speedup_p50": row.get("speedup_p50"),
                "throughput_rows_s": row.get("throughput_rows_s"),
                "metric_value": row.get("value"),
                "delta": row.get("delta"),
                "agreement": row.get("agreement"),
                "max_abs_diff": parity.get("max_abs_diff"),
                "notes": "; ".join(notes),
            }
        )
    return out


def format_table(table: dict[str, Any]) -> str:
    """A plain-text table for terminals."""
    cols = [c for c in _TABLE_COLUMNS if c not in ("notes", "latency_p95_ms")]
    rows = table_rows(table)
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    for r in rows:
        if r["notes"]:
            lines.append(f"  {r['method']}: {r['notes']}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def report_section(table: dict[str, Any]) -> Any:
    """The trade-off table and a latency-vs-quality scatter plot as a `ReportSection`."""
    from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html

    metric = table.get("metric", "metric")
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for row in table["rows"]:
        if row["status"] != "ok" or row.get("latency_p50_ms") is None or row.get("value") is None:
            continue
        original = row["method"] == "original"
        ax.scatter(
            [row["latency_p50_ms"]],
            [row["value"]],
            s=60 if original else 40,
            marker="*" if original else "o",
            color="black" if original else None,
            zorder=3,
        )
        label = row["method"] if row["method"] in ("original", "onnx", "int8") else f"{row['method']}"
        ax.annotate(label, (row["latency_p50_ms"], row["value"]), textcoords="offset points", xytext=(5, 4))
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency p50 (ms, log scale)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"Latency vs {metric} ({table.get('threads')} threads)")
    ax.grid(True, alpha=0.3)
    failed = [r for r in table["rows"] if r["status"] != "ok"]
    intro = (
        f"<p>{html.escape(str(table.get('model_type')))} model, measured on {int(table.get('eval_rows', 0))} "
        f"{html.escape(str(table.get('evaluated_on')))} rows with {int(table.get('threads') or 1)} threads. "
        "Size is the weights file; speed-up is the original's batch-1 p50 latency divided by each row's.</p>"
    )
    if failed:
        intro += "<p><strong>Failed:</strong> " + html.escape(", ".join(r["method"] for r in failed)) + "</p>"
    body = (
        intro
        + table_html(table_rows(table), columns=list(_TABLE_COLUMNS))
        + figure_to_img_tag(fig, alt=f"latency versus {metric}")
    )
    return ReportSection(title="Optimisation trade-offs", html=body)


def _standalone_html(section: Any) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>'
        + html.escape(section.title)
        + "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}td.num{text-align:right}</style></head><body>"
        + f"<h2>{html.escape(section.title)}</h2>"
        + section.html
        + "</body></html>\n"
    )
