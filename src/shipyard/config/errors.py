"""The one place where a pydantic ValidationError becomes a ShipyardError.

Every problem keeps its dotted path (``training.learning_rat``), its YAML line when the input came from a file,
and a suggestion: the nearest known key for a misspelt key, the nearest allowed value for a misspelt choice. The
job loader and every section parser (``privacy``, ``data.pii``, ``optimize``, fairness thresholds, model
parameters) go through :func:`problems_from`, so a typo reads the same wherever it is caught.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shipyard.errors import ShipyardError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str
    message: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if not where:  # a section validated in Python, not read from a file
            return f"{self.path}: {self.message}" if self.path else self.message
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ShipyardError, ValueError):
    """One or more problems in a job (file or section); ``problems`` holds each one. Also a ValueError: bad
    values are what it reports, and callers that check parameters (``validate_params``) catch ValueError."""

    def __init__(self, problems: list[Problem], *, hint: str | None = None) -> None:
        self.problems = problems
        super().__init__("; ".join(p.render() for p in problems), hint=hint)
        self.where = problems[0].path if problems else None

    def render(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def _unwrap(annotation: Any) -> list[type[BaseModel]]:
    """Model classes reachable from an annotation (through Optional, unions, Annotated and lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        out: list[type[BaseModel]] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return []


def _branch(models: list[type[BaseModel]], part: str) -> list[type[BaseModel]]:
    """The union members a location part names when it is a branch label (a class name or a `type` tag)."""
    out = []
    for model in models:
        tag = model.model_fields.get("type")
        tags = typing.get_args(tag.annotation) if tag is not None else ()
        if part == model.__name__ or part in tags:
            out.append(model)
    return out


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[type[BaseModel]]]:
    """The location without pydantic's union branch labels, and the model classes found at its end."""
    kept: list[Any] = []
    candidates: list[type[BaseModel]] = [root]
    for part in loc:
        if isinstance(part, int):
            kept.append(part)
            continue
        name = str(part)
        if name.startswith("function-") or name in ("str", "int", "float", "bool"):
            continue
        fields = [m.model_fields[name] for m in candidates if name in m.model_fields]
        if fields:
            kept.append(part)
            candidates = [c for f in fields for c in _unwrap(f.annotation)]
            continue
        branch = _branch(candidates, name)
        if branch:
            candidates = branch
            continue
        kept.append(part)  # a key of a free-form mapping
        candidates = []
    return tuple(kept), candidates


def _nearest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _suggest(given: str, known: list[str] | tuple[str, ...], *, cutoff: float = 0.6) -> str | None:
    close = difflib.get_close_matches(given, list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


def _message(err: Any, loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        _, models = _walk(root, loc[:-1])
        known = [name for model in models for name in model.model_fields]
        close = _suggest(key, known)
        hint = f"; did you mean `{close}`?" if close else (f"; expected one of: {', '.join(known)}" if known else "")
        return f"unknown key `{key}`{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        known = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        given = str(ctx.get("tag", err.get("input")))
        close = _suggest(given, known, cutoff=0.5)
        hint = f"did you mean `{close}`?" if close else f"known types: {', '.join(known)}"
        return f"unknown {loc[-1]} `{given}`; {hint}"
    if kind == "union_tag_not_found":
        return f"required key `{err.get('ctx', {}).get('discriminator', 'type').strip(chr(39))}` is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and kind != "value_error" and not isinstance(err["input"], dict):
        msg = f"{msg} (got {err['input']!r})"
    if kind == "literal_error":
        known = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        close = _suggest(str(err.get("input")), known, cutoff=0.3)
        if close:
            msg += f"; did you mean `{close}`?"
    return msg


def problems_from(
    exc: ValidationError,
    root: type[BaseModel],
    *,
    file: str = "",
    lines: dict[tuple[Any, ...], int] | None = None,
    prefix: tuple[Any, ...] = (),
) -> list[Problem]:
    """Every error of ``exc`` (raised validating ``root``) as a Problem. ``prefix`` is where ``root`` sits in a
    job (``("data", "pii")``) and ``lines`` maps job paths to YAML lines."""
    lines = lines or {}
    problems = []
    for err in exc.errors():
        loc, _ = _walk(root, tuple(err["loc"]))
        if err["type"] == "union_tag_invalid":  # point at the tag itself: `model.type`, its line
            loc = (*loc, str(err.get("ctx", {}).get("discriminator", "type")).strip("'"))
        full = (*prefix, *loc)
        path = ".".join(str(p) for p in full)
        problems.append(Problem(file, _nearest_line(lines, full), path, _message(err, loc, root)))
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def validate_section(model: type[M], raw: Any, *, where: str = "", hint: str | None = None) -> M:
    """``model.model_validate(raw)`` (None: the defaults), every problem raised as one ConfigError whose paths
    start with ``where`` (e.g. ``"data.pii"``). An instance of ``model`` is returned as it is."""
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        prefix = tuple(where.split(".")) if where else ()
        raise ConfigError(problems_from(exc, model, prefix=prefix), hint=hint) from None
