"""Erasure requests, the row-level part: ``shipyard data forget RUN --where "user_id == 123"``.

:func:`forget` parses the ``--where`` expression with the safe language of :mod:`shipyard.data.where` (never
evaluated as code), removes the matching rows from the run's stored splits
(``run_dir/splits/{train,validation,test}.parquet``, or ``.safetensors`` for an image run; every split is checked
before any file changes; each file is rewritten to a temporary file and renamed, so a reader never sees a
half-written split), scrubs the category vocabulary of every stored preprocessor (``model/`` and ``optimized/*/``):
a level that only forgotten rows had (no remaining stored row has it) is replaced by an opaque placeholder
(``__erased_1__``) so the model's input indices stay valid, marks those model folders' ``shipyard.json``
(``"erasure"``: the weights are still derived from the forgotten rows until retrained), marks the run
``needs_retraining`` in the run store and appends an entry to the audit log with the counts per split and the
column names the expression used — never the expression's values or the rows.

The stored splits hold the features, the target, ``evaluation.sensitive_features`` and ``data.id_column`` (a
record id that is never a model input, kept so that a person's rows can be found). An image split has no id
column of its own: its rows carry ``row`` (their 1-based number in their source) and ``source`` (which of the job's
sources), see :mod:`shipyard.data.split_files`, so ``--where "source == 'source' and row == 17"`` reaches one
image.

The summaries, metrics, report and model card are regenerated from the remaining rows one layer up
(``shipyard.erasure.forget_run``, what the CLI calls): this module only touches row-level stores.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.data.preprocess import JSON_NAME, MISSING, OTHER
from shipyard.data.split_files import read_split, stored_splits, write_split
from shipyard.data.types import _to_text
from shipyard.data.where import parse_where
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json
from shipyard.store.audit import AuditLog
from shipyard.store.runs import RunStore

log = logging.getLogger(__name__)

__all__ = ["ERASED_PREFIX", "forget", "model_folders"]

SPLITS = ("train", "validation", "test")
ERASED_PREFIX = "__erased_"


def model_folders(run_dir: Path) -> list[Path]:
    """Every model folder in the run that holds a preprocessor: ``model/`` and ``optimized/<method>/``."""
    found = [p.parent for p in sorted(run_dir.glob(f"model/{JSON_NAME}"))]
    found += [p.parent for p in sorted(run_dir.glob(f"optimized/*/{JSON_NAME}"))]
    return found


def _levels(frame: pd.DataFrame, column: str) -> set[str]:
    if column not in frame.columns:
        return set()
    return set(frame[column].dropna().map(_to_text))


def _scrub_vocabulary(folder: Path, removed: pd.DataFrame, kept: pd.DataFrame) -> int:
    """Replace category levels only removed rows had by placeholders; returns how many were replaced."""
    path = folder / JSON_NAME
    state = json.loads(path.read_text(encoding="utf-8"))
    replaced = 0
    for column, info in (state.get("categories") or {}).items():
        gone = _levels(removed, column) - _levels(kept, column) - {OTHER, MISSING}
        known = set(info["levels"]) | set(info.get("seen", [])) | {info.get("fill")}
        gone = {g for g in gone if g in known and not g.startswith(ERASED_PREFIX)}
        if not gone:
            continue
        used = sum(1 for level in info["levels"] if str(level).startswith(ERASED_PREFIX))
        rename: dict[str, str] = {}
        for level in info["levels"]:
            if level in gone:
                used += 1
                rename[level] = f"{ERASED_PREFIX}{used}__"
        # the list keeps its order and length: the model's one-hot / ordinal indices do not move
        info["levels"] = [rename.get(level, level) for level in info["levels"]]
        info["seen"] = sorted({rename.get(s, s) for s in info.get("seen", []) if s not in gone or s in rename})
        if info.get("fill") in gone:
            info["fill"] = rename.get(info["fill"], f"{ERASED_PREFIX}fill__")
        names = state.get("feature_names") or []
        state["feature_names"] = [
            f"{column}={rename[n.split('=', 1)[1]]}"
            if n.startswith(f"{column}=") and n.split("=", 1)[1] in rename
            else n
            for n in names
        ]
        replaced += len(rename) + len(gone - set(rename))  # renamed levels + rare ones dropped from `seen`
    if replaced:
        atomic_write_json(path, state)
    return replaced


def _mark_model(folder: Path, rows_removed: int, levels_replaced: int) -> None:
    path = folder / "shipyard.json"
    if not path.is_file():
        return
    meta = json.loads(path.read_text(encoding="utf-8"))
    previous = meta.get("erasure") or {}
    meta["erasure"] = {
        "needs_retraining": True,
        "requests": int(previous.get("requests", 0)) + 1,
        "rows_removed": int(previous.get("rows_removed", 0)) + rows_removed,
        "vocabulary_levels_replaced": int(previous.get("vocabulary_levels_replaced", 0)) + levels_replaced,
        "note": "rows were erased from this model's training data; the weights still carry what was learnt from "
        "them until the model is retrained",
    }
    atomic_write_json(path, meta)


def forget(run_dir: str | Path, where: str, *, actor: str = "shipyard-cli") -> dict[str, Any]:
    """Remove the rows matching ``where`` from the run's stored row-level files; returns counts (never values)."""
    run_dir = Path(run_dir)
    expression = parse_where(where)
    paths = stored_splits(run_dir)
    if not paths:
        raise ShipyardError(
            "the run has no stored splits (run_dir/splits/*.parquet or *.safetensors) to erase from", where=str(run_dir)
        )
    frames = {name: read_split(path) for name, path in paths.items()}
    # all checked before any write
    masks = {name: expression.mask(frame, where=f"the stored {name} split") for name, frame in frames.items()}
    removed = {name: int(mask.sum()) for name, mask in masks.items()}
    total = sum(removed.values())
    levels_replaced = 0
    if total:
        # a level is scrubbed when forgotten rows had it and no remaining stored row (in any split) has it
        gone = pd.concat([f.loc[masks[n].to_numpy()] for n, f in frames.items()], ignore_index=True)
        kept_rows = pd.concat([f.loc[~masks[n].to_numpy()] for n, f in frames.items()], ignore_index=True)
        for model in model_folders(run_dir):
            levels_replaced = max(levels_replaced, _scrub_vocabulary(model, gone, kept_rows))
    for name, mask in masks.items():
        if not removed[name]:
            continue
        kept = frames[name].loc[~mask.to_numpy()].reset_index(drop=True)
        write_split(paths[name], kept)  # atomic; raw rows stay 0600
    if total:
        for model in model_folders(run_dir):
            _mark_model(model, total, levels_replaced)

    root = run_dir.resolve().parent
    marked = False
    if total:
        try:
            RunStore.for_root(root).mark(
                run_dir.name, "needs_retraining", {"reason": "erasure request", "rows_removed": total}
            )
            marked = True
        except ShipyardError as exc:
            log.warning("run %s is not in the run store (%s); not marked", run_dir.name, exc)
    details = {
        "rows_removed": total,
        "by_split": removed,
        "columns": expression.columns,
        "vocabulary_levels_replaced": levels_replaced,
        "marked_needs_retraining": marked,
    }
    entry = AuditLog.for_root(root).record("data.forget", actor, run_dir.name, details)
    log.info("forget on %s: %d row(s) removed %s", run_dir.name, total, removed)
    return {**details, "audit_entry": entry}
