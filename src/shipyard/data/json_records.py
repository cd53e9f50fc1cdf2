"""Rows out of one JSON document: an array of records, or the array a dotted ``records_path`` leads to.

A record is an object (its keys are the columns) or an array (its positions are, named by ``column_names``).
Every bad shape names the file and the 1-based record, so the user can find it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.errors import ShipyardError


def parse_json(text: str, where: str) -> Any:
    """``json.loads`` with errors as ShipyardErrors: the line of a syntax error, and a bound on nesting."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShipyardError(
            f"invalid JSON: {exc.msg} (column {exc.colno})", where=f"{where}, line {exc.lineno}"
        ) from None
    except RecursionError:  # json's decoder recurses once per bracket
        raise ShipyardError("the JSON is nested too deeply to read", where=where) from None


def _keys(value: dict[str, Any]) -> str:
    names = [k for k, v in value.items() if isinstance(v, list)] or list(value)
    return ", ".join(names[:20]) or "none"


def records_at(document: Any, records_path: str | None, path: Path) -> list[Any]:
    """The array of records inside ``document``, following the dotted ``records_path``."""
    value = document
    walked: list[str] = []
    for part in records_path.split(".") if records_path else []:
        if not isinstance(value, dict) or part not in value:
            here = ".".join(walked) or "the top level"
            keys = f"; keys at {here}: {_keys(value)}" if isinstance(value, dict) else ""
            raise ShipyardError(
                f"records_path {records_path!r}: no key {part!r} at {here}{keys}", where=f"{path} (records_path)"
            )
        value = value[part]
        walked.append(part)
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and not records_path:
        raise ShipyardError(
            f"the JSON document is an object; set `records_path` to the key holding the records ({_keys(value)})",
            where=str(path),
        )
    raise ShipyardError(
        f"expected an array of records at {records_path or 'the top level'}, got {type(value).__name__}",
        where=f"{path} (records_path)" if records_path else str(path),
    )


def records_frame(
    records: list[Any], path: Path, *, column_names: list[str] | None, na: set[str], limit: int | None
) -> pd.DataFrame:
    """Objects or arrays (not a mix) -> a frame; strings listed in ``na`` become missing values."""
    if limit is not None:
        records = records[:limit]
    if not records:
        raise ShipyardError("the JSON array holds no records; expected at least one row", where=str(path))
    first = records[0]
    if not isinstance(first, dict | list):
        raise ShipyardError(f"record 1 is a {type(first).__name__}; expected an object or an array", where=str(path))
    kind = dict if isinstance(first, dict) else list
    width = len(column_names) if column_names is not None else (0 if kind is dict else len(first))
    for number, record in enumerate(records, start=1):
        if not isinstance(record, kind):
            raise ShipyardError(
                f"record {number} is a {type(record).__name__} but record 1 is an "
                f"{'object' if kind is dict else 'array'}; every record must have the same shape",
                where=str(path),
            )
        if kind is list and len(record) != width:
            raise ShipyardError(
                f"record {number} has {len(record)} value(s), expected {width}",
                where=str(path),
                hint="`column_names` names each position of an array record",
            )
    if kind is dict:
        if column_names is not None:
            raise ShipyardError("`column_names` applies to array records; these are objects", where=str(path))
        rows = [{k: (None if isinstance(v, str) and v in na else v) for k, v in r.items()} for r in records]
        return pd.DataFrame.from_records(rows)
    columns = list(column_names) if column_names is not None else [f"column_{i}" for i in range(width)]
    if len(set(columns)) != len(columns):
        raise ShipyardError("`column_names` lists a name twice", where=f"{path} (column_names)")
    rows = [[None if isinstance(v, str) and v in na else v for v in r] for r in records]
    return pd.DataFrame.from_records(rows, columns=columns)
