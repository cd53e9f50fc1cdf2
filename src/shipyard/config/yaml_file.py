"""A job file read safely: bounded in size and alias expansion, UTF-8, a mapping at the top, with every key's line.

PyYAML's node tree keeps the line of every key, so a pydantic error location such as
``("training", "learning_rat")`` can be pointed back at ``config.yaml:14``. Knows nothing of the job's schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shipyard.config.errors import ConfigError, Problem
from shipyard.errors import ShipyardError

__all__ = ["MAX_CONFIG_BYTES", "MAX_EXPANDED_NODES", "parse_yaml", "read_yaml_file"]

# A job file is a page of YAML. These limits keep hostile input bounded: anchors and aliases let ten lines stand
# for hundreds of millions of values (an "alias bomb"), which the line map, validation and every later dump of the
# job would expand, so the expanded size is counted on the composed graph (where each alias is one shared node)
# before anything walks it.
MAX_CONFIG_BYTES = 1_000_000
MAX_EXPANDED_NODES = 100_000


def _line_map(node: yaml.Node, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    lines: dict[tuple[Any, ...], int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            for sub, line in _line_map(value, path).items():
                lines.setdefault(sub, line)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_map(item, (*prefix, i)))
    return lines


def _expanded_size(root: yaml.Node, file: str) -> int:
    """How many nodes the document holds once every alias is expanded; refuses cycles and oversized documents.

    Each distinct node is visited once (sizes are memoised by identity), so the cost is that of the text."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            line = node.start_mark.line + 1
            raise ConfigError([Problem(file, line, "", "an alias refers to itself (a recursive anchor)")])
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise ConfigError(
                [
                    Problem(
                        file,
                        node.start_mark.line + 1,
                        "",
                        f"the YAML expands to more than {MAX_EXPANDED_NODES:,} values through anchors and aliases; "
                        "a job file needs far fewer (write the values out, or use fewer nested aliases)",
                    )
                ]
            )
        sizes[key] = total
        return total

    return size(root)


def _too_large(file: str, size: str) -> ConfigError:
    message = (
        f"the file is too large for a job config ({size}, at most {MAX_CONFIG_BYTES:,}); "
        "data belongs in a data file that `data.source` points to"
    )
    return ConfigError([Problem(file, None, "", message)])


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    if len(text) > MAX_CONFIG_BYTES:
        raise _too_large(file, f"{len(text):,} characters")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _expanded_size(node, file)  # before anything expands the aliases
        data = yaml.safe_load(text)
    except RecursionError:  # thousands of nested brackets: PyYAML composes recursively
        raise ConfigError([Problem(file, None, "", "the YAML is nested too deeply for a job config")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem(file, line, "", f"malformed YAML: {problem}")]) from None
    if data is None:
        raise ConfigError([Problem(file, None, "", "the file is empty; expected a mapping with task, data, model")])
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, "", f"expected a mapping at the top, got {type(data).__name__}")])
    return data, _line_map(node) if node is not None else {}


def read_yaml_file(path: str | Path) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    """The mapping in the YAML file at ``path`` and the line of each key path; ConfigError / ShipyardError."""
    path = Path(path)
    if not path.is_file():
        raise ShipyardError("config file does not exist", where=str(path))
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:  # refused before reading: the file may be any size
        raise _too_large(str(path), f"{size:,} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ShipyardError(f"config is not UTF-8 text (byte {exc.start})", where=str(path)) from None
    return parse_yaml(text, str(path))
