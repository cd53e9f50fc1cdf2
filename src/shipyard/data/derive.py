"""Derived features (``data.derive``): each expression evaluated over a frame's numeric columns with numpy.

The expression was checked against a whitelist when the job was read (``shipyard.config.derive``); here its
syntax tree is walked node by node, so nothing the user wrote is ever executed. A result that is not a finite
number (``x / 0``, ``log(0)``, ``sqrt(-1)``) becomes NaN and is imputed like any missing numeric value by the
preprocessor. The preprocessor calls :func:`derive_columns` in ``fit`` and ``transform``, so the artefact carries
the expressions and a served model derives the columns from the raw request.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from shipyard.config.derive import COLUMN_FUNCTION, parse_expression
from shipyard.data.types import _as_numeric
from shipyard.errors import ShipyardError

_BINARY: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs,
    "log": np.log,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "sin": np.sin,
    "cos": np.cos,
    "radians": np.radians,
}


def referenced_columns(derive: Mapping[str, str]) -> list[str]:
    """The raw columns the expressions read (not counting earlier derived ones), in order of first use."""
    out: list[str] = []
    for text in derive.values():
        out.extend(c for c in parse_expression(text)[1] if c not in derive and c not in out)
    return out


def check_derive(derive: Mapping[str, str], column_types: Mapping[str, str], frame_columns: list[str]) -> None:
    """Up front, in the data stage: every column an expression reads is a numeric feature (or an earlier derived
    feature), and no derived name is already a column of the data."""
    earlier: list[str] = []
    for name, text in derive.items():
        where = f"data.derive.{name}"
        if name in frame_columns:
            raise ShipyardError(
                f"derived feature {name!r} (`{text}`) has the name of a column of the data", where=where
            )
        for col in parse_expression(text)[1]:
            if col in earlier:
                continue
            if col not in column_types:
                known = ", ".join(sorted(column_types)) or "none"
                raise ShipyardError(
                    f"`{text}` reads column {col!r}, which is not a feature of this job (features: {known})",
                    where=where,
                    hint="a derived feature reads feature columns or earlier derived features; a column in "
                    "data.drop_columns, the target or the id column cannot be read",
                )
            if column_types[col] != "numeric":
                raise ShipyardError(
                    f"`{text}` reads column {col!r}, which is {column_types[col]}, not numeric", where=where
                )
        earlier.append(name)


def derive_columns(frame: pd.DataFrame, derive: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with one float64 column per derived feature, computed in order (a later expression may read an
    earlier one); the input frame is left as it is."""
    if not derive:
        return frame
    where = frame.attrs.get("source", "input")
    out = frame.copy()
    for name, text in derive.items():
        tree, columns = parse_expression(text)
        missing = [c for c in columns if c not in out.columns]
        if missing:
            raise ShipyardError(
                f"column {missing[0]!r} is missing; derived feature {name!r} (`{text}`) is computed from it",
                where=where,
            )
        values = {c: _as_numeric(out[c], c, where).to_numpy(dtype=np.float64) for c in columns}
        with np.errstate(all="ignore"):
            result = np.broadcast_to(np.asarray(_evaluate(tree, values), dtype=np.float64), (len(out),))
        out[name] = np.where(np.isfinite(result), result, np.nan)
    return out


def _evaluate(node: ast.expr, values: dict[str, np.ndarray]) -> np.ndarray:
    # only the node kinds config/derive.py lets through reach here
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        return np.negative(operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name == COLUMN_FUNCTION:
            return values[node.args[0].value]  # type: ignore[attr-defined]
        args = [_evaluate(a, values) for a in node.args]
        if name == "min":
            return np.minimum.reduce(np.broadcast_arrays(*args))
        if name == "max":
            return np.maximum.reduce(np.broadcast_arrays(*args))
        return _UNARY[name](args[0])
    raise ShipyardError(f"unsupported expression node {type(node).__name__}")  # unreachable after the check
