"""Personal-data (PII) detection, redaction and the ``data.pii`` step of the data layer.

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
spans with a placeholder; :func:`apply_pii` runs the configured step over a data frame and returns a report that
contains counts only.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import logging
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from shipyard.config.pii import PII_TYPES, PIIConfig
from shipyard.errors import ShipyardError

logger = logging.getLogger(__name__)


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

FLAG_COLUMN = "_pii_flag"


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected entity: its type and the half-open character span ``text[start:end]`` (no value kept)."""

    type: str
    start: int
    end: int


# ---------------------------------------------------------------------------------------------------------------
# checksums and validators


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check of a string of digits."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: known length for the country (when in the table) and mod-97 == 1. Spaces are ignored."""
    compact = iban.replace(" ", "").upper()
    if not (15 <= len(compact) <= 34) or not compact.isascii() or not compact.isalnum():
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    expected = _IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits that make ``country + cd + bban`` a valid IBAN (for test data)."""
    number = "".join(str(int(ch, 36)) for ch in (bban + country + "00").upper())
    return f"{98 - int(number) % 97:02d}"


_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"


def cn_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of a PRC resident ID."""
    return _CN_CHECK[sum(int(c) * w for c, w in zip(first17, _CN_WEIGHTS, strict=True)) % 11]


def cn_resident_id_valid(value: str) -> bool:
    """18 characters, region digit 1-8, a real birth date between 1900 and today, MOD 11-2 check character."""
    if len(value) != 18 or not value[:17].isdigit() or not value.isascii() or value[0] not in "12345678":
        return False
    try:
        born = _dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not (_dt.date(1900, 1, 1) <= born <= _dt.date.today()):
        return False
    return cn_id_check_char(value[:17]) == value[17].upper()


def us_ssn_valid(area: str, group: str, serial: str) -> bool:
    """Excludes ranges never issued: area 000, 666 and 900-999; group 00; serial 0000."""
    if area in ("000", "666") or area.startswith("9"):
        return False
    return group != "00" and serial != "0000"


def card_prefix_valid(digits: str) -> bool:
    """Known issuer (IIN) prefix with a length that issuer uses."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if 2200 <= p4 <= 2204:  # Mir
        return 16 <= n <= 19
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:  # Discover
        return n in (16, 19)
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if p2 == 62:  # UnionPay
        return 16 <= n <= 19
    if p2 in (50, 56, 57, 58, 67) or p4 == 6304:  # Maestro
        return 13 <= n <= 19
    if p2 in (60, 81, 82) or p3 == 508:  # RuPay
        return n == 16
    return False


def credit_card_valid(digits: str) -> bool:
    """13-19 digits, a known IIN prefix/length and a valid Luhn check digit."""
    return 13 <= len(digits) <= 19 and digits.isdigit() and card_prefix_valid(digits) and luhn_valid(digits)


# ISO 13616 lengths for the countries that use IBANs most.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

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
        expected = _IBAN_LENGTHS.get(raw[:2])
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
# person names

_UP = "A-Z\u00c0-\u00d6\u00d8-\u00de"
_LOW = "a-z\u00df-\u00f6\u00f8-\u00ff"
_CAP_WORD = rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?"
_SURNAME_WORD = rf"(?:O'|O\u2019|D'|Mc|Mac)?[{_UP}][{_LOW}]+(?:[{_UP}][{_LOW}]+)?(?:-[{_UP}][{_LOW}]+)?"
_PARTICLES = r"(?:van der|van den|van de|de la|de los|de las|von der|van|von|de|da|di|del|du|dos|das|ter|ten|le|bin)"
_GIVEN_RE = re.compile(rf"(?<![\w'\u2019-]){_CAP_WORD}(?![\w'\u2019])")
_MIDDLE_INITIAL = re.compile(rf" [{_UP}]\.(?= )")
_SURNAME_RE = re.compile(rf" (?:{_PARTICLES} )?(?P<word>{_SURNAME_WORD})(?![\w'\u2019])")
_HONORIFIC = re.compile(
    r"(?<![\w])(?:Mr|Mrs|Ms|Mx|Dr|Prof|Mme|Mlle|Sra|Srta|Sr)\.?(?= )|(?<![\w])(?:Sir|Dame|Herr|Frau|Miss)(?= )"
)
_HONORIFIC_NAME = re.compile(rf" +(?:{_PARTICLES} )?(?P<word>{_SURNAME_WORD})(?![\w'\u2019])")

# Common given names, written for this module. Words that are also ordinary English words or places (May, Will,
# Mark, Grace, Jack, Chase, Paris, Georgia ...) are left out on purpose.
_FIRST_NAMES_TEXT = """
    John Johannes Tom Tim Sam Ben Dan Joe Jim Mike Steve Chris Alex Kim Lucy Sophia Ava Mohammad Muhammad Tony
    Fred Ted Nancy Betty Ruth Kenneth Donald Ronald Larry Scott Jeffrey Carl Giuseppe Alessandro Federico Chiara
    Martina Yuto Hana
    Aaron Abigail Adam Adrian Agnieszka Ahmed Aisha Alan Albert Alejandro Alexander Alexandra Alexis Alfred Ali
    Alice Alicia Alina Alison Amanda Amelia Amit Amy Ana Anastasia Andrea Andreas Andrew Andrzej Angela Anil Anita
    Anja Anna Anne Annika Anthony Antoine Antonio Arjun Arthur Ashley Astrid Aurelie Barbara Beatriz Benjamin
    Bernard Beth Bianca Brandon Brian Camille Carla Carlos Carmen Caroline Catherine Cecilia Charles Charlotte
    Chen Chloe Christina Christine Christopher Claire Clara Claudia Colin Connor Craig Cristina Daniel Daniela
    Daniele David Deborah Deepak Denise Diana Diego Dmitri Dominik Donna Dorothy Edward Elena Elif Elisa
    Elizabeth Ella Ellen Emily Emma Emre Eric Erik Esther Ethan Eva Fabian Fatima Felix Fernando Fiona
    Francesca Francesco Francisco Franz Gabriel Gabriela Gareth Gary Gemma George Gerald Giorgio Giovanni Giulia
    Gregory Greta Hannah Hans Harry Heather Heidi Helen Helena Henrik Henry Hiroshi Hugo Ian Ibrahim Ines Ingrid
    Irene Isabel Isabella Ivan Jacob Jakub James Jan Jana Jane Janet Jason Javier Jean Jennifer Jens Jessica Joanna
    Joao Jonathan Jorge Jose Joseph Joshua Juan Julia Julian Julie Jun Justin Karen Karin Karl Katarzyna Kate
    Katharina Katherine Kathleen Kenji Kevin Kimberly Klaus Krzysztof Kumar Lars Laura Lauren Laurent Leah Lena
    Leon Leonardo Liam Linda Lisa Lorenzo Louis Louise Luca Lucas Lucia Luis Lukas Maciej Magdalena Manuel Marc
    Marco Margaret Maria Marie Marina Mario Marta Martin Mary Mateo Matteo Matthew Matthias Maximilian Megan Mehmet
    Melissa Michael Michelle Miguel Mikhail Min Mohammed Monica Nadia Natalia Natalie Nathan Nicholas Nicola
    Nicolas Nicole Niklas Nina Noah Nora Oliver Olga Olivia Omar Oscar Pablo Pamela Paolo Patricia Patrick Paul
    Paula Pedro Peter Philip Pierre Piotr Pooja Priya Rachel Rafael Rahul Raj Rajesh Ravi Rebecca Richard Robert
    Roberto Ryan Samantha Samuel Sandra Sara Sarah Sebastian Sergei Sergio Simon Simone Sofia Sophie Stefan
    Stefanie Stephanie Stephen Steven Susan Svetlana Takeshi Tatiana Teresa Thomas Timothy Tobias Tomasz Valentina
    Vanessa Victor Vikram Vincent Wei Wojciech Xavier Yan Yuki Yusuf Zainab Zoe Zofia Aditya Ananya Beatrice
    Benedikt Birgit Carlos Dieter Elke Emilia Florian Francois Gunther Hamid Hassan Hyun Ingrid Jin Johan Jonas
    Jurgen Kai Karolina Khalid Lea Leila Lin Ling Marek Mariana Marius Mateusz Mei Mia Mohamed Nadine Naoko Neha
    Nils Ole Pascal Petra Ramon Rosa Sabine Sanjay Sebastien Sofie Soren Sunita Sven Thiago Ulrike Ursula Uwe
    Vera Werner Wolfgang Yasmin Yusuke Emil Jorg Jose Andre Helene Elodie Celine Jerome Frederic Rene Zoltan
    Istvan Laszlo Agnes Bogdan Ioana Andrei Mihai Elif Ayse Fatma Mustafa Kerem Selin Aryan Kavya Lakshmi
    Suresh Ramesh Mahesh Anjali Deepika Hiroko Haruto Sakura Yuna Minjun Jiwoo Seojun Xiaoming Jing Hui
    Stuart Graham Neil Keith Derek Trevor Nigel Wendy Sharon Tracy Brenda Carol Janice Lorraine Moira Siobhan
    Sean Declan Niamh Aoife Ciaran Eoin Rhys Owen Dylan Gwen Morgan Bethan Alistair Hamish Kirsty Callum
    Kyle Tyler Zachary Brittany Kayla Courtney Jasmine Danielle Heidi Marcus Russell Howard Douglas Raymond
    Dennis Walter Harold Roger Terry Ralph Lawrence Wayne Roy Eugene Louis Philip Bruce Vincent Albert Willie
    Dolores Gloria Theresa Beverly Judith Cheryl Mildred Katie Jacqueline Martha Frances Ann Joan Evelyn Jean
    Sofía José María Jérôme Frédéric Hélène Élodie Céline Zoë Jürgen Jörg Sören Günther Françoise François
    Agnès André René Renée Inés Raúl Álvaro Joaquín Martín Ramón Léa Benoît Loïc Gaëlle Björn Åsa Øystein
"""
FIRST_NAMES: frozenset[str] = frozenset(_FIRST_NAMES_TEXT.split())

# Capitalised words that are not surnames even after a listed given name.
_NOT_SURNAME_TEXT = """
    The A An And Or But If Of In On At To For From With By As Is Are Was Were Be Been Has Have Had Do Does Did
    I We You He She They It This That These Those My Your Our Their His Her Its Me Us Them Who What When Where
    Why How Which Yes No Not Please Thanks Thank Regards Dear Hello Hi Hey Best Kind Cheers Sincerely Sorry
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July August
    September October November December Mon Tue Wed Thu Fri Sat Sun Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov
    Dec Street St Road Rd Avenue Ave Lane Ln Drive Dr Boulevard Blvd Way Court Ct Place Square Plaza Bridge
    Station Airport Hotel Bank Banking Card Cards Account Accounts Support Team Customer Customers Service
    Services Desk Help Center Centre Inc Ltd Llc Corp Company Co Group Holdings Airlines Airways University
    College School Hospital Clinic Store Shop Online Mobile App Pay Visa Mastercard Express Order Orders Invoice
    Ticket Case Refund Payment Delivery Shipping Account Billing Sales Manager Director Admin Administrator
    Department Dept Office Branch City County State North South East West Central New Old Pro Max Plus Mini
    Premium Gold Silver Platinum Edition Version Update Release Home Care Insurance Energy Gas Water Electric
    Mail Email Phone Tel Fax Cc Bcc Re Fwd Subject Note Notes Agent User Users Client Clients Member Members
    Jr Jnr Snr Sr Esq Ii Iii
    Here There Today Tomorrow Yesterday Now Then Also Just Still Only Every All Any Some Each Both
"""
_NOT_SURNAME: frozenset[str] = frozenset(_NOT_SURNAME_TEXT.split())


def _find_person_name(text: str) -> Iterator[Candidate]:
    for m in _GIVEN_RE.finditer(text):
        if m.group() not in FIRST_NAMES:
            continue
        pos = m.end()
        mid = _MIDDLE_INITIAL.match(text, pos)
        if mid:
            pos = mid.end()
        else:  # a second listed given name followed by a surname: "Mary Ann Smith"
            second = _SURNAME_RE.match(text, pos)
            if second and second.group("word") in FIRST_NAMES:
                third = _SURNAME_RE.match(text, second.end())
                if third and third.group("word") not in _NOT_SURNAME:
                    pos = second.end()
        sur = _SURNAME_RE.match(text, pos)
        if sur and sur.group("word") not in _NOT_SURNAME:
            yield "person_name", m.start(), sur.end()
    for h in _HONORIFIC.finditer(text):
        first = _HONORIFIC_NAME.match(text, h.end())
        if not first or first.group("word") in _NOT_SURNAME:
            continue
        start = first.end() - len(first.group().lstrip())
        end = first.end()
        second = _SURNAME_RE.match(text, end)
        if second and second.group("word") not in _NOT_SURNAME:
            end = second.end()
        yield "person_name", start, end


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
    "person_name": _find_person_name,
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


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        str(c)
        for c in frame.columns
        if c != FLAG_COLUMN
        and (
            pd.api.types.is_object_dtype(frame[c])
            or pd.api.types.is_string_dtype(frame[c])
            or isinstance(frame[c].dtype, pd.CategoricalDtype)
        )
    ]


def apply_pii(frame: pd.DataFrame, cfg: PIIConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the PII step on ``frame`` (not modified) and return the new frame and a counts-only report.

    ``redact`` replaces values (a categorical column with a finding becomes an object column); ``drop_rows``
    removes every row with a finding (the index is kept); ``flag`` adds a boolean ``_pii_flag`` column. The report is
    ``{"action", "types", "columns", "counts": {column: {type: n}}, "rows_affected", "rows_dropped"}``; it never
    contains the values found.
    """
    wanted = set(cfg.types)
    columns = cfg.columns if cfg.columns is not None else _text_columns(frame)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ShipyardError(
            f"pii.columns names column(s) not in the data: {missing}",
            where="data.pii.columns",
            hint=f"columns present: {[str(c) for c in frame.columns][:20]}",
        )
    out = frame.copy()
    affected = pd.Series(False, index=frame.index)
    counts: dict[str, dict[str, int]] = {}
    for col in columns:
        col_counts: dict[str, int] = {}
        new_values: list[Any] = []
        hits: list[bool] = []
        for value in frame[col].tolist():
            if not isinstance(value, str) or not value:
                new_values.append(value)
                hits.append(False)
                continue
            found = detect(value, wanted)
            for f in found:
                col_counts[f.type] = col_counts.get(f.type, 0) + 1
            hits.append(bool(found))
            new_values.append(redact(value, placeholder=cfg.placeholder, findings=found) if found else value)
        counts[str(col)] = dict(sorted(col_counts.items()))
        affected |= pd.Series(hits, index=frame.index)
        if cfg.action == "redact" and any(hits):
            out[col] = pd.Series(new_values, index=frame.index, dtype=object)
    rows_affected = int(affected.sum())
    rows_dropped = 0
    if cfg.action == "drop_rows":
        out = out.loc[~affected]
        rows_dropped = rows_affected
    elif cfg.action == "flag":
        if FLAG_COLUMN in frame.columns:
            logger.warning("pii: column %s already exists and is overwritten", FLAG_COLUMN)
        out[FLAG_COLUMN] = affected.astype(bool)
    report: dict[str, Any] = {
        "action": cfg.action,
        "types": sorted(wanted),
        "columns": [str(c) for c in columns],
        "counts": counts,
        "rows_affected": rows_affected,
        "rows_dropped": rows_dropped,
    }
    totals: dict[str, int] = {}
    for col_counts in counts.values():
        for t, n in col_counts.items():
            totals[t] = totals.get(t, 0) + n
    logger.info(
        "pii %s: %d of %d rows affected, %d dropped, findings by type %s",
        cfg.action,
        rows_affected,
        len(frame),
        rows_dropped,
        dict(sorted(totals.items())),
    )
    return out, report
