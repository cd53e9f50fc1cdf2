"""Validation of the optional job sections that later layers own (`data.pii`, `privacy`, fairness thresholds).

Each section is a pydantic model kept beside the code that uses it; this turns its validation errors into one
ShipyardError that names every bad field (``where`` points at the first one).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shipyard.errors import ShipyardError

M = TypeVar("M", bound=BaseModel)


def validate_section(model: type[M], raw: dict[str, Any] | None, *, where: str, hint: str | None = None) -> M:
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"{where}.{loc}: {err['msg']}" if loc else f"{where}: {err['msg']}")
        first = ".".join(str(p) for p in exc.errors()[0]["loc"])
        # one problem: `where` already names the field, so the message is only what is wrong with it
        message = exc.errors()[0]["msg"] if len(problems) == 1 else "; ".join(problems)
        raise ShipyardError(message, where=f"{where}.{first}" if first else where, hint=hint) from None
