"""``data.derive``: the grammar of a derived feature, checked with Python's ``ast`` against a whitelist.

An expression is arithmetic over columns: numbers, column names (``total_rooms``, or ``col("capital-gain")`` for
a name that is not a Python identifier), ``+ - * / **``, unary minus and a few functions (:data:`FUNCTIONS`).
The text is parsed, never executed: no ``eval``, no ``pandas.eval``, no attribute access, subscripts, comparisons,
lambdas or keyword arguments; each node is checked here and evaluated over numpy arrays by
``shipyard.data.derive``. This module is in the config layer so a job file is refused, with its line, before any
data is read.
"""

from __future__ import annotations

import ast
import re

# name -> (fewest, most) arguments
FUNCTIONS: dict[str, tuple[int, int]] = {
    "abs": (1, 1),
    "log": (1, 1),
    "log1p": (1, 1),
    "exp": (1, 1),
    "sqrt": (1, 1),
    "sin": (1, 1),
    "cos": (1, 1),
    "radians": (1, 1),
    "min": (2, 8),
    "max": (2, 8),
}
COLUMN_FUNCTION = "col"  # col("a name with - or spaces")
MAX_LENGTH = 1000  # characters; a derived feature is a formula, not a program
MAX_NODES = 200
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALLOWED = 'numbers, column names, col("name"), + - * / **, unary minus and the functions ' + ", ".join(
    sorted(FUNCTIONS)
)


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscript",
        ast.Compare: "comparison",
        ast.BoolOp: "and/or",
        ast.Lambda: "lambda",
        ast.IfExp: "if/else",
        ast.Call: "call",
        ast.List: "list",
        ast.Tuple: "tuple",
        ast.Dict: "dict",
    }
    kind = next((v for k, v in kinds.items() if isinstance(node, k)), type(node).__name__)
    return f"`{ast.unparse(node)}` ({kind})" if hasattr(ast, "unparse") else kind


def parse_expression(text: str) -> tuple[ast.expr, list[str]]:
    """The checked syntax tree of ``text`` and the columns it reads, in order of first use; a ValueError naming
    the offending part when the text is not a whitelisted expression."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a derived feature needs an expression, e.g. `total_rooms / households`")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"expression is {len(text)} characters long; at most {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"`{text}` is not an arithmetic expression ({exc.msg}); allowed: {ALLOWED}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ValueError(f"`{text}` is too large (more than {MAX_NODES} syntax nodes)")
    columns: list[str] = []
    _check(tree.body, text, columns)
    return tree.body, columns


def _check(node: ast.expr, text: str, columns: list[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ValueError(f"{_describe(node)} in `{text}` is not a number; allowed: {ALLOWED}")
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS or node.id == COLUMN_FUNCTION:
            raise ValueError(f"`{node.id}` in `{text}` is a function; call it, e.g. `{node.id}(x)`")
        if node.id not in columns:
            columns.append(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        _check(node.left, text, columns)
        _check(node.right, text, columns)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand, text, columns)
    elif isinstance(node, ast.Call):
        _check_call(node, text, columns)
    else:
        raise ValueError(f"{_describe(node)} is not allowed in `{text}`; allowed: {ALLOWED}")


def _check_call(node: ast.Call, text: str, columns: list[str]) -> None:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ValueError(f"{_describe(node)} in `{text}`: functions take plain positional arguments only")
    if name == COLUMN_FUNCTION:
        arg = node.args[0] if len(node.args) == 1 else None
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value):
            raise ValueError(f'{_describe(node)} in `{text}`: col() takes one quoted column name, e.g. col("a-b")')
        if arg.value not in columns:
            columns.append(arg.value)
        return
    if name not in FUNCTIONS:
        raise ValueError(f"{_describe(node)} in `{text}` calls an unknown function; allowed: {ALLOWED}")
    low, high = FUNCTIONS[name]
    if not low <= len(node.args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise ValueError(f"{name}() in `{text}` takes {want} argument(s), got {len(node.args)}")
    for arg in node.args:
        _check(arg, text, columns)


def check_derived_name(name: str) -> None:
    """A derived column's name: a plain identifier, so it reads the same in expressions, reports and requests."""
    if not _NAME.match(name):
        raise ValueError(f"derived column name {name!r}: use letters, digits and underscores, not a leading digit")
    if name in FUNCTIONS or name == COLUMN_FUNCTION:
        raise ValueError(f"derived column name {name!r} is a function name")
