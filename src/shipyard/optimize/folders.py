"""The folders an optimisation writes: each result as an ordinary artifact folder, published only once it passed.

A method works in a scratch folder named after its process (``.work-<pid>-<method>-...``) and the finished
artifact is renamed into ``optimized/<method>/`` in one step, so a reader never sees a half-written model and a
rerun can tell a killed optimisation's leftovers from a concurrent one's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from torch import nn

from shipyard.artifact import META, save_torch_artifact
from shipyard.io import atomic_write_json
from shipyard.optimize.context import RunContext
from shipyard.store.liveness import process_alive

log = logging.getLogger(__name__)

# the original's weights: everything else of its model folder (preprocessor, tokenizer, encoder config) is copied
_WEIGHT_FILES = ("model.safetensors", "model.onnx", "model.onnx.data")


def copy_support_files(ctx: RunContext, folder: Path) -> None:
    """Preprocessor, tokenizer, encoder config: everything of the original but its weights."""
    for path in ctx.model_dir.iterdir():
        if path.name in _WEIGHT_FILES:
            continue
        target = folder / path.name
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)


def onnx_folder(ctx: RunContext, work: Path, onnx_path: Path, info: dict[str, Any]) -> Path:
    """An ONNX Runtime artifact: the original's metadata and support files around ``onnx_path``."""
    folder = work / "artifact"
    folder.mkdir()
    copy_support_files(ctx, folder)
    shutil.copy2(onnx_path, folder / "model.onnx")
    meta = json.loads((ctx.model_dir / META).read_text(encoding="utf-8"))
    meta.update(
        backend="onnx",
        onnx_file="model.onnx",
        optimization=jsonable(info),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    atomic_write_json(folder / META, meta)
    return folder


def torch_folder(ctx: RunContext, work: Path, model: nn.Module, params: dict[str, Any], info: dict[str, Any]) -> Path:
    """A torch artifact of ``model`` (built from ``params``), with the original's preprocessing and labels."""
    meta = ctx.artifact.meta
    folder = work / "artifact"
    folder.mkdir()
    copy_support_files(ctx, folder)
    keep = {k: meta[k] for k in ("run_id", "config_hash", "read_options") if k in meta}
    save_torch_artifact(
        folder,
        model=model,
        preprocessor=ctx.artifact.preprocessor,
        task=ctx.task,
        model_type=ctx.model_type,
        model_params=params,
        input_spec=ctx.spec,
        features=meta["features"],
        target=meta["target"],
        labels=meta.get("labels"),
        target_scale=ctx.target_scale,
        metrics=meta.get("metrics"),
        extra={**keep, "optimization": jsonable(info)},
    )
    return folder


def publish(folder: Path, dest: Path) -> Path:
    """Move a finished folder into place: rename the old one aside first so there is never a half state."""
    old = None
    if dest.exists():
        old = dest.with_name(f".old-{dest.name}-{time.time_ns()}")
        dest.rename(old)
    folder.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def work_prefix() -> str:
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


def remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python numbers (anything else unknown into its string)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
