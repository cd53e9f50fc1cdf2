"""Personal data (PII): the rule-based detector (detect.py, with checksums.py and names.py) and the ``data.pii``
step of the data layer (step.py). Offline; findings carry a type and a span, never the value."""

from shipyard.config.pii import PII_TYPES, PIIConfig
from shipyard.data.pii.checksums import (
    card_prefix_valid,
    cn_id_check_char,
    cn_resident_id_valid,
    credit_card_valid,
    iban_check_digits,
    iban_valid,
    luhn_valid,
    us_ssn_valid,
)
from shipyard.data.pii.detect import Finding, detect, redact
from shipyard.data.pii.step import FLAG_COLUMN, apply_pii

__all__ = [
    "FLAG_COLUMN",
    "PII_TYPES",
    "Finding",
    "PIIConfig",
    "apply_pii",
    "card_prefix_valid",
    "cn_id_check_char",
    "cn_resident_id_valid",
    "credit_card_valid",
    "detect",
    "iban_check_digits",
    "iban_valid",
    "luhn_valid",
    "redact",
    "us_ssn_valid",
]
