"""The house rules that import-linter does not check (docs/architecture.md).

`lint-imports` (Makefile: test, lint) checks the layer contract in pyproject.toml. These tests add: no import cycle
between any two modules of src/ (function-level imports included), function-level imports of shipyard modules
that respect the same layer order (read from pyproject.toml, so there is one list), no file in src/ over 450 lines,
and no function over 80 lines unless its def line says why (``# long: <why>``).
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the deepest name that is a module of src/)
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module or not node.module.startswith("shipyard"):
            return []
        # `from shipyard.x import y` imports shipyard.x.y when y is a module, else shipyard.x
        names = [f"{node.module}.{a.name}" for a in node.names]
        return [n for n in names if n in modules] or ([node.module] if node.module in modules else [])
    return [a.name for a in node.names if a.name in modules]


@cache
def _imports() -> list[Import]:
    modules = _modules()
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_function = {
            id(node)
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(fn)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, modules):
                    if target != name:
                        found.append(Import(name, target, node.lineno, id(node) in in_function))
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _layers() -> list[list[str]]:
    """The layer contract's layers, top first, each a list of sibling packages (optional ones included)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[name.strip(" ()") for name in layer.split("|")] for layer in contract["layers"]]


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module in _modules():
        edges[module]  # every module is a node
    for imp in _imports():
        edges[imp.source].add(imp.target)
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set, {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert _cycles(edges) == [["a", "b", "c"]]


def test_function_level_imports_follow_the_layer_order() -> None:
    rank: dict[str, int] = {}
    for depth, layer in enumerate(_layers()):
        for package in layer:
            rank[package] = depth
    wrong = []
    for imp in _imports():
        source, target = _package(imp.source), _package(imp.target)
        if not imp.in_function or not source or source == target:
            continue  # module-level imports: lint-imports checks them; the root package's lazy `run` is above all
        assert source in rank and target in rank, f"{imp.source} or {imp.target} is in no layer of pyproject.toml"
        if rank[target] <= rank[source]:  # upward, or into an independent sibling
            wrong.append(f"{imp.source}:{imp.line} imports {imp.target}")
    assert wrong == []


def test_every_package_is_in_a_layer() -> None:
    named = {package for layer in _layers() for package in layer}
    packages = {_package(m) for m in _modules()} - {""}
    assert packages <= named, sorted(packages - named)


def test_no_file_in_src_is_over_450_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in _modules().values()}
    assert {p: n for p, n in sizes.items() if n > MAX_FILE_LINES} == {}


def test_no_function_is_over_80_lines_without_saying_why() -> None:
    long = []
    for path in _modules().values():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES and "# long:" not in lines[node.lineno - 1]:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size} lines)")
    assert long == []
