"""Load a job from YAML and report every problem at once, each with its YAML path, line and a suggestion.

PyYAML's node tree keeps the line of every key, so a pydantic error location such as
``("training", "learning_rat")`` can be pointed back at ``config.yaml:14``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shipyard.config.errors import ConfigError, Problem, problems_from
from shipyard.config.schema import Job
from shipyard.errors import ShipyardError

__all__ = ["ConfigError", "Problem", "load_job", "parse_yaml", "validate_dict", "validate_file"]


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


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
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


def validate_dict(data: dict[str, Any], file: str = "<config>", lines: dict | None = None) -> Job:
    try:
        return Job.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, Job, file=file, lines=lines)) from None


def load_job(path: str | Path) -> Job:
    """Read and validate a job file; raises ConfigError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ShipyardError("config file does not exist", where=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ShipyardError(f"config is not UTF-8 text (byte {exc.start})", where=str(path)) from None
    data, lines = parse_yaml(text, str(path))
    return validate_dict(data, str(path), lines)


def validate_file(path: str | Path) -> list[Problem]:
    try:
        load_job(path)
    except ConfigError as exc:
        return exc.problems
    return []
