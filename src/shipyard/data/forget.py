"""Erasure requests: ``shipyard data forget RUN --where "user_id == 123"``.

:func:`forget` evaluates a pandas ``query`` expression over the run's stored splits
(``run_dir/splits/{train,validation,test}.parquet``), removes the matching rows from each file (every split is
checked before any file changes; each file is rewritten to a temporary file and renamed, so a reader never sees
a half-written split), marks the run ``needs_retraining`` in the run store (the model may still carry what it
learnt from those rows) and appends an entry to the audit log with the counts per split and the column names the
expression used — never the expression's values or the removed rows.

The stored splits hold the features, the target, ``evaluation.sensitive_features`` and ``data.id_column`` (a
record id that is never a model input, kept so that a person's rows can be found). Expressions are pandas
``DataFrame.query`` syntax over those columns (``age > 90 and sex == 'Female'``,
``user_id in [1, 2]``, backticks for odd names). References to Python variables (``@x``) are refused. A bad
expression (syntax, unknown column, non-boolean result) is a ShipyardError naming ``--where``; an unknown column
is named together with the columns the splits do have.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.errors import UndefinedVariableError

from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_parquet

log = logging.getLogger(__name__)

__all__ = ["forget"]

SPLITS = ("train", "validation", "test")


def _mask(frame: pd.DataFrame, where: str, split: str) -> pd.Series:
    try:
        result = frame.eval(where, engine="python")
    except UndefinedVariableError as exc:
        # the usual cause: matching on an id that was not a model input, so it was never stored
        found = re.search(r"name '([^']+)' is not defined", str(exc))
        name = found.group(1) if found else str(exc)
        if name.startswith("BACKTICK_QUOTED_STRING_"):  # pandas' mangled form of a `quoted name`
            quoted = [q for q in re.findall(r"`([^`]+)`", where) if q not in frame.columns]
            name = quoted[0] if quoted else name
        available = ", ".join(str(c) for c in frame.columns)
        raise ShipyardError(
            f"unknown column {name!r} in the expression: the stored {split} split has the columns {available}",
            where="--where",
            hint="a column that is not a model feature is stored only when the job names it in data.id_column "
            "(or evaluation.sensitive_features); set data.id_column and retrain to match on it",
        ) from None
    except Exception as exc:  # pandas raises SyntaxError, TypeError, ValueError ...
        message = str(exc).split("\n")[0][:200]
        raise ShipyardError(
            f"cannot evaluate the expression on the {split} split: {type(exc).__name__}: {message}",
            where="--where",
            hint=f"use pandas query syntax over the columns: {[str(c) for c in frame.columns][:20]}",
        ) from None
    if not isinstance(result, pd.Series) or result.dtype != bool or len(result) != len(frame):
        raise ShipyardError(
            "the expression must give one true/false value per row (a comparison such as `user_id == 123`)",
            where="--where",
        )
    return result


def _columns_used(where: str, columns: list[str]) -> list[str]:
    found = []
    for col in columns:
        if re.search(r"(?<![\w`])" + re.escape(col) + r"(?![\w`])", where) or f"`{col}`" in where:
            found.append(col)
    return found


def forget(run_dir: str | Path, where: str, *, actor: str = "shipyard-cli") -> dict[str, Any]:
    """Remove the rows matching ``where`` from the run's stored splits; returns counts (never values)."""
    run_dir = Path(run_dir)
    if not isinstance(where, str) or not where.strip():
        raise ShipyardError("give a non-empty --where expression", where="--where")
    if "@" in where:
        raise ShipyardError("the expression may not reference Python variables (`@name`)", where="--where")
    folder = run_dir / "splits"
    paths = {name: folder / f"{name}.parquet" for name in SPLITS if (folder / f"{name}.parquet").is_file()}
    if not paths:
        raise ShipyardError("the run has no stored splits (run_dir/splits/*.parquet) to erase from", where=str(run_dir))
    frames = {name: pd.read_parquet(path) for name, path in paths.items()}
    masks = {name: _mask(frame, where, name) for name, frame in frames.items()}  # all checked before any write
    removed = {name: int(mask.sum()) for name, mask in masks.items()}
    for name, mask in masks.items():
        if not removed[name]:
            continue
        kept = frames[name].loc[~mask.to_numpy()].reset_index(drop=True)
        atomic_write_parquet(paths[name], kept, private=True)  # raw rows stay 0600
    total = sum(removed.values())
    columns = sorted({c for f in frames.values() for c in _columns_used(where, [str(x) for x in f.columns])})

    from shipyard.store.audit import AuditLog
    from shipyard.store.runs import RunStore

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
    details = {"rows_removed": total, "by_split": removed, "columns": columns, "marked_needs_retraining": marked}
    entry = AuditLog.for_root(root).record("data.forget", actor, run_dir.name, details)
    log.info("forget on %s: %d row(s) removed %s", run_dir.name, total, removed)
    return {**details, "audit_entry": entry}
