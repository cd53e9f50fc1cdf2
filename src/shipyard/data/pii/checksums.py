"""Checksums and validators of the PII detector: Luhn, IBAN mod-97, PRC resident ID MOD 11-2, US SSN ranges, card
issuer prefixes. Pure functions of a string; no pattern matching here (detect.py finds the candidates)."""

from __future__ import annotations

import datetime as _dt


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
    expected = IBAN_LENGTHS.get(compact[:2])
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
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
