"""The ``--where`` language of erasure requests: a small row filter that is parsed, never evaluated as code.

Grammar (Python expression syntax, read with :mod:`ast` in ``eval`` mode and checked node by node against an
allow-list; nothing is ever passed to ``eval``, ``DataFrame.query`` or ``DataFrame.eval``)::

    expr    := expr "and" expr | expr "or" expr | "not" expr | "(" expr ")" | compare
    compare := operand (op operand)+          op: == != < <= > >= in "not in" is "is not"
    operand := column | literal | "[" literal, ... "]" | "(" literal, ... ")"
    column  := a bare name (user_id) or a backtick-quoted one (`customer id`)
    literal := number | 'string' | "string" | True | False | None | -number

``x == None`` / ``x is None`` match missing values (``is not None`` / ``!= None`` the others). A column on the
right of ``in`` or a list on the left is refused, and so is anything else: attributes, calls, subscripts,
arithmetic, lambdas, f-strings, ``@variables``. The expression is capped in length and node count.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import ShipyardError

__all__ = ["GRAMMAR", "MAX_LENGTH", "MAX_NODES", "WhereExpression", "parse_where"]

MAX_LENGTH = 2000  # an erasure request names a few ids or conditions; a longer text is a mistake or an attack
MAX_NODES = 400  # bounds the work of checking and evaluating (a list of ~100 ids fits)
GRAMMAR = (
    "columns compared with literals (== != < <= > >= in, not in, is None), joined by and / or / not, e.g. "
    '"user_id == 1005", "user_id in [1, 2] and city != \'x\'", "`customer id` == 7"'
)

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_BACKTICK = re.compile(r"`([^`]*)`")


def _error(message: str) -> ShipyardError:
    return ShipyardError(message, where="--where", hint=f"the expression language is: {GRAMMAR}")


def _describe(node: ast.AST, source: str) -> str:
    text = ast.get_source_segment(source, node) or type(node).__name__
    return f"{type(node).__name__} `{text[:80]}`"


class WhereExpression:
    """A checked ``--where`` expression; :meth:`mask` gives one bool per row of a frame."""

    def __init__(self, text: str, source: str, tree: ast.expr, names: dict[str, str]) -> None:
        self.text = text
        self._tree = tree
        self._names = names  # placeholder identifier -> backtick-quoted column name
        self._source = source

    @property
    def columns(self) -> list[str]:
        """The column names the expression uses (sorted, de-duplicated)."""
        found = {self._column(n) for n in ast.walk(self._tree) if isinstance(n, ast.Name)}
        return sorted(found)

    def _column(self, node: ast.Name) -> str:
        return self._names.get(node.id, node.id)

    def mask(self, frame: pd.DataFrame, *, where: str = "the data") -> pd.Series:
        """Evaluate on ``frame``; an unknown column is a ShipyardError naming the columns ``frame`` has."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            available = ", ".join(str(c) for c in frame.columns)
            raise ShipyardError(
                f"unknown column {missing[0]!r} in the expression: {where} has the columns {available}",
                where="--where",
                hint="a column that is not a model feature is stored only when the job names it in data.id_column "
                "(or evaluation.sensitive_features); set data.id_column and retrain to match on it",
            )
        result = self._eval(self._tree, frame)
        return pd.Series(np.asarray(result, dtype=bool), index=frame.index)

    # evaluation: each node gives a numpy bool array (conditions) or a value (operands)
    def _eval(self, node: ast.expr, frame: pd.DataFrame) -> np.ndarray:
        if isinstance(node, ast.BoolOp):
            parts = [self._eval(v, frame) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = parts[0]
            for part in parts[1:]:
                out = combine(out, part)
            return out
        if isinstance(node, ast.UnaryOp):  # only `not` reaches here (checked by the parser)
            return np.logical_not(self._eval(node.operand, frame))
        assert isinstance(node, ast.Compare)
        out = np.ones(len(frame), dtype=bool)
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            out &= self._compare(left, op, right, frame)
            left = right
        return out

    def _operand(self, node: ast.expr, frame: pd.DataFrame) -> Any:
        if isinstance(node, ast.Name):
            return frame[self._column(node)]
        return _literal(node)

    def _compare(self, left: ast.expr, op: ast.cmpop, right: ast.expr, frame: pd.DataFrame) -> np.ndarray:
        a, b = self._operand(left, frame), self._operand(right, frame)
        if isinstance(op, ast.In | ast.NotIn):
            values = list(b)
            hit = a.isin([v for v in values if v is not None]).to_numpy() | (
                a.isna().to_numpy() if None in values else False
            )
            return ~hit if isinstance(op, ast.NotIn) else hit
        if isinstance(op, ast.Is | ast.IsNot) or (isinstance(op, ast.Eq | ast.NotEq) and (a is None or b is None)):
            series = a if isinstance(a, pd.Series) else b
            null = series.isna().to_numpy() if isinstance(series, pd.Series) else np.full(len(frame), a is b)
            return ~null if isinstance(op, ast.IsNot | ast.NotEq) else null
        try:
            result = _COMPARE[type(op)](a, b)
        except TypeError:  # e.g. `city > 3`: an error, since matching nothing would quietly erase nothing
            column = a if isinstance(a, pd.Series) else b
            raise _error(
                f"cannot compare column {column.name!r} ({column.dtype}) with "
                f"{_describe(right if isinstance(a, pd.Series) else left, self._source)}"
            ) from None
        if isinstance(result, pd.Series):
            return result.fillna(False).to_numpy(dtype=bool)
        return np.full(len(frame), bool(result))


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):  # -3, +2.5 (checked by the parser)
        value = _literal(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    assert isinstance(node, ast.List | ast.Tuple | ast.Set)
    return [_literal(e) for e in node.elts]


def _replace_backticks(text: str) -> tuple[str, dict[str, str]]:
    names: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        key = f"_quoted_column_{len(names)}_"
        names[key] = match.group(1)
        return key

    return _BACKTICK.sub(swap, text), names


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def condition(self, node: ast.expr) -> None:
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self.condition(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.condition(node.operand)
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for left, op, right in zip(operands, node.ops, operands[1:], strict=False):
                self.comparison(left, op, right)
        else:
            raise _error(
                f"{_describe(node, self.source)} is not a condition: use a comparison such as `user_id == 123`"
            )

    def comparison(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> None:
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(left, ast.Name):
                raise _error(f"the left side of `in` must be a column, not {_describe(left, self.source)}")
            if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                raise _error(f"the right side of `in` must be a list of literals, not {_describe(right, self.source)}")
            for element in right.elts:
                self.literal(element)
            return
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(right, ast.Constant) and right.value is None) or not isinstance(left, ast.Name):
                raise _error("`is` / `is not` only test a column against None (missing values)")
            return
        if type(op) not in _COMPARE:
            raise _error(f"operator {type(op).__name__} is not allowed")
        for side in (left, right):
            if not isinstance(side, ast.Name):
                self.literal(side)
        if not (isinstance(left, ast.Name) or isinstance(right, ast.Name)):
            raise _error(f"the comparison `{_SYMBOL[type(op)]}` must involve a column")

    def literal(self, node: ast.expr) -> None:
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, bool | int | float | str)):
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = node.operand
            if isinstance(operand, ast.Constant) and isinstance(operand.value, int | float):
                return
        raise _error(f"{_describe(node, self.source)} is not allowed: only columns and literal values")


def parse_where(text: str) -> WhereExpression:
    """Parse and check ``text``; a ShipyardError names the offending part and the grammar."""
    if not isinstance(text, str) or not text.strip():
        raise ShipyardError("give a non-empty --where expression", where="--where", hint=f"e.g. {GRAMMAR}")
    if len(text) > MAX_LENGTH:
        raise _error(f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if "@" in text:
        raise _error("the expression may not reference Python variables (`@name`)")
    source, names = _replace_backticks(text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise _error(f"cannot parse the expression: {exc.msg} (column {exc.offset})") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise _error(f"the expression has {count} parts; the limit is {MAX_NODES} (split the request in several)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise _error(f"name {node.id!r} is not allowed")
    _Checker(source).condition(tree.body)
    return WhereExpression(text, source, tree.body, names)
