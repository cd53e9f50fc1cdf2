"""The ``data.pii`` step of the data layer: run the detector (detect.py) over a frame's text columns and redact,
drop or flag the rows with personal data; the report holds counts only, never a value found."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from shipyard.config.pii import PIIConfig
from shipyard.data.pii.detect import detect, redact
from shipyard.errors import ShipyardError

logger = logging.getLogger("shipyard.data.pii")

FLAG_COLUMN = "_pii_flag"


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        str(c)
        for c in frame.columns
        if c != FLAG_COLUMN
        and (
            pd.api.types.is_object_dtype(frame[c])
            or pd.api.types.is_string_dtype(frame[c])
            or isinstance(frame[c].dtype, pd.CategoricalDtype)
        )
    ]


def apply_pii(frame: pd.DataFrame, cfg: PIIConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the PII step on ``frame`` (not modified) and return the new frame and a counts-only report.

    ``redact`` replaces values (a categorical column with a finding becomes an object column); ``drop_rows``
    removes every row with a finding (the index is kept); ``flag`` adds a boolean ``_pii_flag`` column. The report is
    ``{"action", "types", "columns", "counts": {column: {type: n}}, "rows_affected", "rows_dropped"}``; it never
    contains the values found.
    """
    wanted = set(cfg.types)
    columns = cfg.columns if cfg.columns is not None else _text_columns(frame)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ShipyardError(
            f"pii.columns names column(s) not in the data: {missing}",
            where="data.pii.columns",
            hint=f"columns present: {[str(c) for c in frame.columns][:20]}",
        )
    out = frame.copy()
    affected = pd.Series(False, index=frame.index)
    counts: dict[str, dict[str, int]] = {}
    for col in columns:
        col_counts: dict[str, int] = {}
        new_values: list[Any] = []
        hits: list[bool] = []
        for value in frame[col].tolist():
            if not isinstance(value, str) or not value:
                new_values.append(value)
                hits.append(False)
                continue
            found = detect(value, wanted)
            for f in found:
                col_counts[f.type] = col_counts.get(f.type, 0) + 1
            hits.append(bool(found))
            new_values.append(redact(value, placeholder=cfg.placeholder, findings=found) if found else value)
        counts[str(col)] = dict(sorted(col_counts.items()))
        affected |= pd.Series(hits, index=frame.index)
        if cfg.action == "redact" and any(hits):
            out[col] = pd.Series(new_values, index=frame.index, dtype=object)
    rows_affected = int(affected.sum())
    rows_dropped = 0
    if cfg.action == "drop_rows":
        out = out.loc[~affected]
        rows_dropped = rows_affected
    elif cfg.action == "flag":
        if FLAG_COLUMN in frame.columns:
            logger.warning("pii: column %s already exists and is overwritten", FLAG_COLUMN)
        out[FLAG_COLUMN] = affected.astype(bool)
    report: dict[str, Any] = {
        "action": cfg.action,
        "types": sorted(wanted),
        "columns": [str(c) for c in columns],
        "counts": counts,
        "rows_affected": rows_affected,
        "rows_dropped": rows_dropped,
    }
    totals: dict[str, int] = {}
    for col_counts in counts.values():
        for t, n in col_counts.items():
            totals[t] = totals.get(t, 0) + n
    logger.info(
        "pii %s: %d of %d rows affected, %d dropped, findings by type %s",
        cfg.action,
        rows_affected,
        len(frame),
        rows_dropped,
        dict(sorted(totals.items())),
    )
    return out, report
