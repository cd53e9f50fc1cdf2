"""The ``data.pii`` step of a job: what personal data to look for, where, and what to do with rows that hold it.

Detection and redaction are shipyard.data.pii; this is only the validated settings.
"""

from __future__ import annotations

import string
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.config.errors import validate_section

PIIType = Literal[
    "email",
    "phone",
    "credit_card",
    "iban",
    "ipv4",
    "ipv6",
    "us_ssn",
    "cn_resident_id",
    "url_credentials",
    "person_name",
]
PII_TYPES: tuple[str, ...] = get_args(PIIType)

PII_HINT = "pii: {action: redact|drop_rows|flag, types: [...], columns: [...], placeholder: '[{TYPE}]'}"


class PIIConfig(BaseModel):
    """The ``data.pii`` step: what to look for, where, and what to do with rows that contain it."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["redact", "drop_rows", "flag"] = "redact"
    types: list[PIIType] = Field(default_factory=lambda: list(PII_TYPES), min_length=1)
    columns: list[str] | None = None  # None: every text / categorical (object, string, category) column
    placeholder: str = "[{TYPE}]"

    @field_validator("placeholder")
    @classmethod
    def _placeholder_fields(cls, value: str) -> str:
        for _, field, _, _ in string.Formatter().parse(value):
            if field is not None and field not in ("TYPE", "type"):
                raise ValueError("placeholder may only use the fields {TYPE} and {type}")
        return value

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | PIIConfig | None, *, where: str = "data.pii") -> PIIConfig:
        """Validate the raw ``data.pii`` mapping of a job (ConfigError naming each bad field)."""
        return validate_section(cls, raw, where=where, hint=PII_HINT)
