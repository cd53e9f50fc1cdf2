"""Personal-data (PII) detection and redaction: the detector behind the ``data.pii`` step (step.py).

Everything here is offline and rule-based (stdlib ``re`` + ``ipaddress``): each type has a candidate pattern and a
validator (checksum, value ranges, context words), and overlapping candidates are resolved by a fixed priority.

Types (``PII_TYPES``):

- ``email``            local@domain.tld
- ``phone``            ``+CC ...`` / ``00CC ...`` international numbers (8-15 digits), NANP ``(212) 555-1234`` and
                       ``415-555-2671``, trunk-0 national numbers with separators (``020 7946 0958``,
                       ``01 23 45 67 89``), separated Chinese mobiles (``138 0013 8000``); bare digit runs (10-11
                       digits, or ``555-0199``) only right after a phone word (phone, tel, call, mobile, 电话 ...).
                       Strong "not a phone" words just before a number (order, invoice, tracking, ISBN, SKU ...)
                       veto it.
- ``credit_card``      13-19 digits, optionally grouped by spaces/dashes, known IIN prefix + length, Luhn-valid.
- ``iban``             upper-case country code + check digits + BBAN, with or without spaces, the country's length
                       (when known) and the ISO 7064 mod-97 checksum. IBAN-shaped strings that fail the checksum
                       are "claimed" so that their digit groups are not reported as phones or cards either.
- ``ipv4`` / ``ipv6``  validated with :mod:`ipaddress`; dotted quads right after ``v``/``version``/``build``/
                       ``release``/``firmware`` are versions, not addresses.
- ``us_ssn``           ``AAA-GG-SSSS`` outside the never-issued ranges (area 000, 666, 9xx; group 00; serial
                       0000); the spaced / bare 9-digit forms only right after ``SSN``/``social security``.
- ``cn_resident_id``   18-character PRC resident ID: region digit 1-8, a real birth date, ISO 7064 MOD 11-2.
- ``url_credentials``  ``scheme://user:password@host[:port]`` (the span ends at the host/port).
- ``person_name``      "Given Surname" where Given is in a built-in list of ~550 common given names (several
                       languages, Latin script) and Surname is a capitalised word (particles like van/de/von and
                       O'/Mc prefixes allowed), plus honorific + capitalised word(s) (``Dr. Patel``; the span is
                       the name without the honorific).

Known limits: names outside the list, lone given names, lower-case names and non-Latin-script names are missed;
a capitalised non-name after a listed given name ("Jack Daniels", "John Lewis") is reported; obfuscated
e-mails ("jane at example dot com") are missed; lower-case IBANs are missed; phone formats with ``/`` separators
and bare digit runs without a phone word are missed on purpose (they look like order numbers).

:func:`detect` returns :class:`Finding` objects (type + span only, never the value); :func:`redact` replaces the
spans with a placeholder. Validators are in checksums.py, the person-name finder in names.py.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from shipyard.config.pii import PII_TYPES
from shipyard.data.pii.checksums import (
    IBAN_LENGTHS,
    cn_resident_id_valid,
    credit_card_valid,
    iban_valid,
    us_ssn_valid,
)
from shipyard.data.pii.names import find_person_name
from shipyard.errors import ShipyardError

# Earlier wins when two candidates overlap (then the longer one, then the earlier one).
_PRIORITY: dict[str, int] = {
    "url_credentials": 0,
    "email": 1,
    "iban": 2,
    "_claimed": 3,  # IBAN-shaped but invalid: blocks weaker matches inside it, never reported
    "cn_resident_id": 4,
    "credit_card": 5,
    "us_ssn": 6,
    "ipv6": 7,
    "ipv4": 8,
    "phone": 9,
    "person_name": 10,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected entity: its type and the half-open character span ``text[start:end]`` (no value kept)."""

    type: str
    start: int
    end: int


# ---------------------------------------------------------------------------------------------------------------
# context words

_A = re.ASCII
_I = re.ASCII | re.IGNORECASE

_POSITIVE_PHONE = re.compile(
    r"\b(?:phone|phones|tel|tele|telephone|mobile|mob|cell|cellphone|call|called|calling|fax|whatsapp|sms|text"
    r"|ring|dial|hotline|landline|contact|reach|handy|telefon|telefono|tlf|portable|cellulare|movil)\b"
    r"|t\xe9l\xe9phone|t\xe9l\b|m\xf3vil|tel\xe9fono|n\xfamero|num\xe9ro|\u7535\u8bdd|\u624b\u673a|\u8054\u7cfb"
    r"|\u2706|\u260e",
    re.IGNORECASE,
)
_STRONG_NEGATIVE = re.compile(
    r"\b(?:order|orders|ord|invoice|inv|ref|reference|tracking|track|shipment|parcel|isbn|issn|ean|upc|sku"
    r"|serial|imei|part|product|item|model|po|case|ticket|transaction|txn|confirmation|booking|receipt"
    r"|account|acct|zip|zipcode|postcode|post\s+code|postal|plz|iban|batch|lot|build|version|customer\s+id|member\s+id)\b",
    re.IGNORECASE,
)
_WEAK_NEGATIVE = re.compile(r"#|\u2116|\bn[o\xb0]\b\.?|\bnr\b\.?|\bnum\b\.?|\bid\b", re.IGNORECASE)
_SSN_CONTEXT = re.compile(r"\b(?:ssn|ss#|social\s+security(?:\s+(?:no|number))?|tin|itin)\b", re.IGNORECASE)
_VERSION_BEFORE = re.compile(
    r"(?:\bv|\bver\.?|\bversion|\bbuild|\brelease|\bfirmware|\bfw|\bkernel|\bsdk|\bapi)\s*[:=#]?\s*$",
    re.IGNORECASE,
)


def _context(text: str, start: int, window: int = 40) -> str | None:
    """'pos' / 'neg' / None from the words just before ``start``: the nearest strong word decides; a weak
    negative (``#``, ``no.``) counts only when no phone word comes before it."""
    before = text[max(0, start - window) : start]
    best: tuple[int, str] | None = None
    for kind, rx in (("pos", _POSITIVE_PHONE), ("neg", _STRONG_NEGATIVE)):
        for m in rx.finditer(before):
            if best is None or m.end() > best[0]:
                best = (m.end(), kind)
    weak = _WEAK_NEGATIVE.search(before)
    if best is None:
        return "neg" if weak else None
    if best[1] == "pos":
        return "pos"
    return "neg"


# ---------------------------------------------------------------------------------------------------------------
# candidate finders: each yields (type, start, end)

Candidate = tuple[str, int, int]

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])(?!:[\w~/.-])",  # not git@host:path
    _A,
)
_URL_CRED = re.compile(
    r"(?<![\w.+-])[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s/:@]+:[^\s/@]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"(?::[0-9]{1,5})?",
    _A,
)


def _find_email(text: str) -> Iterator[Candidate]:
    for m in _EMAIL.finditer(text):
        yield "email", m.start(), m.end()


def _find_url_credentials(text: str) -> Iterator[Candidate]:
    for m in _URL_CRED.finditer(text):
        yield "url_credentials", m.start(), m.end()


_IBAN_SHAPE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,8}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])", _A
)


def _find_iban(text: str) -> Iterator[Candidate]:
    for m in _IBAN_SHAPE.finditer(text):
        raw = m.group()
        expected = IBAN_LENGTHS.get(raw[:2])
        end = None
        if expected is None:
            if iban_valid(raw):
                end = m.end()
        else:
            count = 0
            for i, ch in enumerate(raw):
                if ch != " ":
                    count += 1
                if count == expected:
                    # the IBAN must end at a group boundary of the match (a word after it may have been swallowed)
                    if (i + 1 == len(raw) or raw[i + 1] == " ") and iban_valid(raw[: i + 1]):
                        end = m.start() + i + 1
                    break
        if end is not None:
            yield "iban", m.start(), end
        elif len(raw.replace(" ", "")) >= 14:
            yield "_claimed", m.start(), m.end()


_DIGIT_RUN = re.compile(r"(?<![\w.,/-])[0-9]+(?:[ -][0-9]+)*(?![\w])(?![.,/][0-9])", _A)


def _find_credit_card(text: str) -> Iterator[Candidate]:
    for m in _DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end()) for g in re.finditer(r"[0-9]+", m.group())]
        if sum(e - s for s, e in groups) < 13 or len(groups) > 12:
            continue
        if _STRONG_NEGATIVE_CARD.search(text[max(0, m.start() - 40) : m.start()]):
            continue
        best: tuple[int, int] | None = None
        run = m.group()
        for i in range(len(groups)):
            for j in range(len(groups) - 1, i - 1, -1):
                s, e = groups[i][0], groups[j][1]
                digits = re.sub(r"[^0-9]", "", run[s:e])
                if len(digits) < 13:
                    break
                if len(digits) <= 19 and credit_card_valid(digits) and (best is None or e - s > best[1] - best[0]):
                    best = (s, e)
        if best is not None:
            yield "credit_card", m.start() + best[0], m.start() + best[1]


_STRONG_NEGATIVE_CARD = re.compile(
    r"\b(?:order|invoice|inv|tracking|shipment|parcel|isbn|ean|upc|sku|serial|imei|iccid|ref|reference)\b"
    r"[^.;\n]*$",
    re.IGNORECASE,
)

_CN_ID = re.compile(r"(?<![A-Za-z0-9])[1-8][0-9]{16}[0-9Xx](?![A-Za-z0-9])", _A)


def _find_cn_resident_id(text: str) -> Iterator[Candidate]:
    for m in _CN_ID.finditer(text):
        if cn_resident_id_valid(m.group()):
            yield "cn_resident_id", m.start(), m.end()


_SSN_DASHED = re.compile(r"(?<![\w./#-])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![\w-])(?![./][0-9])", _A)
_SSN_LOOSE = re.compile(r"(?<![\w./#-])([0-9]{3}) ?([0-9]{2}) ?([0-9]{4})(?![\w-])(?![./][0-9])(?! [0-9])", _A)


def _find_us_ssn(text: str) -> Iterator[Candidate]:
    for m in _SSN_DASHED.finditer(text):
        if us_ssn_valid(*m.groups()) and _context(text, m.start()) != "neg":
            yield "us_ssn", m.start(), m.end()
    for m in _SSN_LOOSE.finditer(text):
        if us_ssn_valid(*m.groups()) and _SSN_CONTEXT.search(text[max(0, m.start() - 30) : m.start()]):
            yield "us_ssn", m.start(), m.end()


_IPV4 = re.compile(r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![\w])(?!\.[0-9])", _A)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:])(?!\.[0-9])",
    _A,
)


def _find_ipv4(text: str) -> Iterator[Candidate]:
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text[max(0, m.start() - 16) : m.start()]):
            continue
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield "ipv4", m.start(), m.end()


def _find_ipv6(text: str) -> Iterator[Candidate]:
    for m in _IPV6.finditer(text):
        raw = m.group()
        hexdigits = sum(ch in string.hexdigits for ch in raw)
        if (hexdigits < 3 and raw != "::1") or ("::" not in raw and raw.count(":") < 7 and "." not in raw):
            continue
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        yield "ipv6", m.start(), m.end()


_NOT_BEFORE = r"(?<![\w.#/+-])(?<![0-9] )"
_NOT_AFTER = r"(?![\w])(?![.\-/][0-9])(?! [0-9])"
_PHONE_PATTERNS: tuple[tuple[re.Pattern[str], bool], ...] = (
    # (pattern, needs a phone word before it)
    (  # international: +CC / 00CC, optional (0), groups
        re.compile(
            r"(?<![\w+])(?<![0-9] )(?:\+|\b00)[1-9][0-9]{0,2}(?:[ .-]?\(0\))?(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}"
            + _NOT_AFTER,
            _A,
        ),
        False,
    ),
    (re.compile(r"(?<![\w)])\([2-9][0-9]{2}\) ?[0-9]{3}[ .-][0-9]{4}" + _NOT_AFTER, _A), False),  # (212) 555-1234
    (re.compile(_NOT_BEFORE + r"[2-9][0-9]{2}([ .-])[0-9]{3}\1[0-9]{4}" + _NOT_AFTER, _A), False),  # 415-555-2671
    (  # trunk-0 national numbers with separators
        re.compile(_NOT_BEFORE + r"(?:0[1-9][0-9]{0,3}|\(0[1-9][0-9]{0,3}\))(?:[ -][0-9]{2,8}){1,4}" + _NOT_AFTER, _A),
        False,
    ),
    (re.compile(_NOT_BEFORE + r"1[3-9][0-9]([ -])[0-9]{4}\1[0-9]{4}" + _NOT_AFTER, _A), False),  # 138 0013 8000
    (re.compile(_NOT_BEFORE + r"[0-9]{10,11}" + _NOT_AFTER, _A), True),  # bare digits after a phone word
    (re.compile(_NOT_BEFORE + r"[2-9][0-9]{2}-[0-9]{4}" + _NOT_AFTER, _A), True),  # 555-0199 after a phone word
)


_ZIP4 = re.compile(r"[0-9]{5}-[0-9]{4}", _A)  # US ZIP+4 (can start with 0), never a phone


def _phone_digits_ok(raw: str) -> bool:
    digits = re.sub(r"[^0-9]", "", raw.replace("(0)", ""))
    if raw.startswith("+1") and not raw[2:3].isdigit():  # NANP: +1 and ten digits
        return len(digits) == 11
    if raw.startswith("+"):
        return 8 <= len(digits) <= 15
    if raw.startswith("00"):
        return 10 <= len(digits) <= 17
    if raw.startswith(("0", "(0")):
        return 9 <= len(digits) <= 12 and not _ZIP4.fullmatch(raw)
    return 7 <= len(digits) <= 11


def _find_phone(text: str) -> Iterator[Candidate]:
    for rx, needs_word in _PHONE_PATTERNS:
        for m in rx.finditer(text):
            if not _phone_digits_ok(m.group()):
                continue
            ctx = _context(text, m.start())
            if ctx == "neg" or (needs_word and ctx != "pos"):
                continue
            yield "phone", m.start(), m.end()


# ---------------------------------------------------------------------------------------------------------------
# public API

_FINDERS: dict[str, Callable[[str], Iterator[Candidate]]] = {
    "url_credentials": _find_url_credentials,
    "email": _find_email,
    "iban": _find_iban,
    "cn_resident_id": _find_cn_resident_id,
    "credit_card": _find_credit_card,
    "us_ssn": _find_us_ssn,
    "ipv6": _find_ipv6,
    "ipv4": _find_ipv4,
    "phone": _find_phone,
    "person_name": find_person_name,
}


def _check_types(types: Iterable[str] | None) -> set[str]:
    if types is None:
        return set(PII_TYPES)
    wanted = set(types)
    unknown = sorted(wanted - set(PII_TYPES))
    if unknown:
        raise ShipyardError(f"unknown PII type(s) {unknown}", hint=f"known types: {', '.join(PII_TYPES)}")
    return wanted


def detect(text: str, types: set[str] | None = None) -> list[Finding]:
    """Find PII in ``text``; returns non-overlapping findings sorted by position.

    All types are searched (so that, e.g., an IBAN is not also half-reported as a phone) and then filtered to
    ``types`` (all types when None).
    """
    wanted = _check_types(types)
    if not isinstance(text, str) or not text:
        return []
    candidates: list[Candidate] = []
    for finder in _FINDERS.values():
        candidates.extend(finder(text))
    candidates.sort(key=lambda c: (_PRIORITY[c[0]], -(c[2] - c[1]), c[1]))
    taken: list[Candidate] = []
    for cand in candidates:
        if all(cand[2] <= t[1] or cand[1] >= t[2] for t in taken):
            taken.append(cand)
    return sorted(
        (Finding(t, s, e) for t, s, e in taken if t in wanted),
        key=lambda f: (f.start, f.end),
    )


def _render_placeholder(placeholder: str, type_: str) -> str:
    return placeholder.replace("{TYPE}", type_.upper()).replace("{type}", type_)


def redact(
    text: str,
    types: set[str] | None = None,
    placeholder: str = "[{TYPE}]",
    findings: list[Finding] | None = None,
) -> str:
    """``text`` with every finding replaced by ``placeholder`` (``{TYPE}`` -> EMAIL, ``{type}`` -> email)."""
    if findings is None:
        findings = detect(text, types)
    out = text
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        out = out[: f.start] + _render_placeholder(placeholder, f.type) + out[f.end :]
    return out
