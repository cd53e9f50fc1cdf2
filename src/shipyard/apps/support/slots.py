"""Slot extraction by rules: order numbers, e-mail addresses, product names.

Rules, not a trained tagger, because Bitext's marked entities come from a handful of templated values (its 473
`order_id` rows hold a few distinct numbers), so a tagger trained on them would learn those values rather than
the pattern; an order number's shape (6 to 20 digits, or `#`/letters-dash-digits) and the e-mail detector of
`shipyard.data.pii` generalise. tests/apps/support/test_slots.py measures the order rule against every Bitext row
that marks an `order_id` (offsets included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shipyard.data.pii import detect

# an order reference: after a cue word, or a long digit run on its own
_CUE = r"(?:order|purchase|parcel|package|shipment|delivery|ord|#)"
ORDER_AFTER_CUE = re.compile(rf"{_CUE}\s*(?:number|no\.?|n[o°]|id|#|:)?\s*#?\s*([A-Z]{{0,4}}-?\d{{4,20}})\b", re.I)
ORDER_BARE = re.compile(r"(?<![\w@.+-])(\d{6,20})(?![\w@])")


@dataclass
class Slots:
    order_id: str | None = None
    email: str | None = None
    product: str | None = None
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("order_id", self.order_id), ("email", self.email), ("product", self.product)) if v}


def extract(text: str, products: list[str] | tuple[str, ...] = ()) -> Slots:
    slots = Slots()
    findings = detect(text)
    emails = [f for f in findings if f.type == "email"]
    if emails:
        slots.email = text[emails[0].start : emails[0].end]
        slots.spans["email"] = (emails[0].start, emails[0].end)
    masked = text
    for f in findings:  # digits inside an address, a card or a phone number are never an order number
        masked = masked[: f.start] + " " * (f.end - f.start) + masked[f.end :]
    match = ORDER_AFTER_CUE.search(masked) or ORDER_BARE.search(masked)
    if match:
        slots.order_id = match.group(1).upper()
        slots.spans["order_id"] = (match.start(1), match.end(1))
    lowered = text.lower()
    for name in sorted(products, key=len, reverse=True):  # the longest name first: "iPhone 15 Pro" over "iPhone"
        at = lowered.find(name.lower())
        if at >= 0:
            slots.product = name
            slots.spans["product"] = (at, at + len(name))
            break
    return slots
