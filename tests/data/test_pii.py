"""Tests of the PII detector (shipyard.data.pii): each type, hard negatives, checksums, the data step, no leaks."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from shipyard.data.pii import (
    FLAG_COLUMN,
    PII_TYPES,
    Finding,
    PIIConfig,
    apply_pii,
    card_prefix_valid,
    cn_id_check_char,
    cn_resident_id_valid,
    credit_card_valid,
    detect,
    iban_check_digits,
    iban_valid,
    luhn_valid,
    redact,
    us_ssn_valid,
)
from shipyard.errors import ShipyardError

ROOT = Path(__file__).resolve().parents[2]
EVAL_SET = ROOT / "tests" / "data" / "pii_eval" / "pii_eval.jsonl"


def spans(text: str, types: set[str] | None = None) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in detect(text, types)]


def found(text: str, type_: str) -> list[str]:
    return [value for t, value in spans(text) if t == type_]


# --------------------------------------------------------------------------------------------------- checksums


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111x1111111111")


def test_card_prefixes_and_lengths() -> None:
    assert credit_card_valid("4111111111111111")  # Visa
    assert credit_card_valid("5555555555554444")  # Mastercard
    assert credit_card_valid("378282246310005")  # Amex
    assert credit_card_valid("6011111111111117")  # Discover
    assert credit_card_valid("3530111333300000")  # JCB
    assert not card_prefix_valid("9111111111111111")
    assert not credit_card_valid("378282246310005" + "0")  # Amex with 16 digits


def test_iban_checksum() -> None:
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert iban_valid("DE89370400440532013000")
    assert iban_valid("FR1420041010050500013M02606")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("DE8937040044053201300")  # one character short for DE
    assert iban_check_digits("DE", "370400440532013000") == "89"


def test_cn_resident_id() -> None:
    assert cn_id_check_char("11010519491231002") == "X"
    assert cn_resident_id_valid("11010519491231002X")
    assert not cn_resident_id_valid("110105194912310021")  # wrong check character
    first = "11010519491331002"  # month 13
    assert not cn_resident_id_valid(first + cn_id_check_char(first))
    first = "91010519491231002"  # region digit 9
    assert not cn_resident_id_valid(first + cn_id_check_char(first))


def test_ssn_ranges() -> None:
    assert us_ssn_valid("078", "05", "1120")
    for bad in (("000", "12", "3456"), ("666", "12", "3456"), ("912", "34", "5678"), ("123", "00", "4567"),
                ("123", "45", "0000")):  # fmt: skip
        assert not us_ssn_valid(*bad)


# ----------------------------------------------------------------------------------------------- positives


@pytest.mark.parametrize(
    ("text", "type_", "value"),
    [
        ("mail jane.doe@example.co.uk today", "email", "jane.doe@example.co.uk"),
        ("Call me at +44 20 7946 0958 please", "phone", "+44 20 7946 0958"),
        ("US: +1 (415) 555-2671.", "phone", "+1 (415) 555-2671"),
        ("from abroad 0044 20 7946 0958", "phone", "0044 20 7946 0958"),
        ("Beijing +86 138 0013 8000", "phone", "+86 138 0013 8000"),
        ("NY (212) 555-1234", "phone", "(212) 555-1234"),
        ("London 020 7946 0958", "phone", "020 7946 0958"),
        ("joindre au 01 23 45 67 89", "phone", "01 23 45 67 89"),
        ("phone: 4155552671", "phone", "4155552671"),
        ("我的手机号是138 0013 8000。", "phone", "138 0013 8000"),
        ("card 4111 1111 1111 1111 exp 12/25", "credit_card", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005", "credit_card", "3782-822463-10005"),
        ("card 5555555555554444.", "credit_card", "5555555555554444"),
        ("IBAN GB82 WEST 1234 5698 7654 32 BIC NWBKGB2L", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("Konto DE89370400440532013000", "iban", "DE89370400440532013000"),
        ("IBAN DE89 3704 0044 0532 0130 00 BANK", "iban", "DE89 3704 0044 0532 0130 00"),
        ("ip=192.168.1.10 port 22", "ipv4", "192.168.1.10"),
        ("client 2001:db8::8a2e:370:7334 done", "ipv6", "2001:db8::8a2e:370:7334"),
        ("loopback ::1 ok", "ipv6", "::1"),
        ("mapped ::ffff:192.0.2.128 ok", "ipv6", "::ffff:192.0.2.128"),
        ("SSN 078-05-1120 on file", "us_ssn", "078-05-1120"),
        ("SSN: 123 45 6789", "us_ssn", "123 45 6789"),
        ("身份证11010519491231002X已登记", "cn_resident_id", "11010519491231002X"),
        ("dsn=postgres://admin:s3cr3t@db.internal:5432/prod", "url_credentials", "postgres://admin:s3cr3t@db.internal:5432"),
        ("Spoke with John Smith yesterday", "person_name", "John Smith"),
        ("Signed: Anna van der Berg", "person_name", "Anna van der Berg"),
        ("Dear Dr. Patel,", "person_name", "Patel"),
        ("Ms. O'Brien approved", "person_name", "O'Brien"),
        ("Then María Fernández called", "person_name", "María Fernández"),
    ],
)  # fmt: skip
def test_positive(text: str, type_: str, value: str) -> None:
    assert found(text, type_) == [value], spans(text)


# -------------------------------------------------------------------------------------------- hard negatives


@pytest.mark.parametrize(
    "text",
    [
        "Order ORD-2023-004512 and order #100234567 were merged.",
        "Shipped on 2024-03-15, delivered 15/03/2024 at 14:30.",
        "Agent upgraded to v1.2.3.4, OS version 10.0.19045.2846.",
        "build 1.2.3.4 is deployed",
        "Version: 192.168.0.1",
        "The ISBN 978-3-16-148410-0 edition costs $24.99.",
        "ISBN 0-306-40615-2",
        "UPS 1Z999AA10123456784 and USPS 9400 1000 0000 0000 0000 00 both delayed.",
        "Tracking number 420 94105 9205 5000 0000 0000 00 for the parcel.",
        "Invoice INV-2024-00871 is overdue.",
        "Card 4111 1111 1111 1112 failed validation",
        "Random number 4539578763621487 from the batch job.",
        "IBAN GB82 WEST 1234 5698 7654 33 has a typo.",
        "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum.",
        "Invalid SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000.",
        "ID 110105194912310021 has a wrong check digit.",
        "Price: $1,299.99, was 1.234,56 €; save 13%.",
        "Our zip is 94105, ZIP+4 06928-4266, post code SW1A 1AA.",
        "Product code XR-2200-BLK-16GB, SKU 400-123-4567, P/N 4021-887-2201.",
        "MAC 00:1A:2B:3C:4D:5E, time 12:30:45, ratio 3:2:1, std::vector a::b",
        "Bad IP 256.100.1.1 and 192.168.1 were ignored; OID 1.3.6.1.4.1.9.",
        "Ticket #4155552671 was closed. Order number 02079460958 shipped.",
        "Hello Sarah, Visa Platinum benefits apply to Customer Service requests on Monday.",
        "git clone git@github.com:org/repo.git and https://docs.example.com/guide?lang=en",
        "uuid 550e8400-e29b-41d4-a716-446655440000 timestamp 1710498000123",
    ],
)
def test_hard_negative(text: str) -> None:
    assert detect(text) == [], spans(text)


def test_types_filter_and_no_overlap() -> None:
    text = "ftp://backup:pa55word@10.0.0.7 and jane@example.com"
    assert [f.type for f in detect(text)] == ["url_credentials", "email"]  # the IP inside the URL is not separate
    assert [f.type for f in detect(text, {"email"})] == ["email"]
    with pytest.raises(ShipyardError, match="unknown PII type"):
        detect(text, {"passport"})


def test_finding_holds_only_type_and_span() -> None:
    (f,) = detect("mail jane@example.com")
    assert f == Finding("email", 5, 21)
    assert set(Finding.__slots__) == {"type", "start", "end"}


def test_redact() -> None:
    text = "Call +44 20 7946 0958 or mail jane@example.com"
    assert redact(text) == "Call [PHONE] or mail [EMAIL]"
    assert redact(text, {"email"}) == "Call +44 20 7946 0958 or mail [EMAIL]"
    assert redact(text, placeholder="<{type}>") == "Call <phone> or mail <email>"
    assert redact("") == ""


# ----------------------------------------------------------------------------------------------- data step

SECRETS = ["jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "078-05-1120", "John Smith"]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "note": [
                "contact jane.doe@example.com or +44 20 7946 0958",
                "nothing here, order ORD-2023-004512",
                "card 4111 1111 1111 1111",
                None,
            ],
            "agent": pd.Categorical(["John Smith", "team b", "team b", "team a"]),
            "amount": [1.5, 2.0, 3.0, 4.0],
            "ssn": ["078-05-1120", "n/a", "n/a", "n/a"],
        }
    )


def _assert_no_values(obj: object) -> None:
    dumped = json.dumps(obj)
    for secret in SECRETS:
        assert secret not in dumped


def test_apply_redact(frame: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    original = frame.copy()
    with caplog.at_level(logging.DEBUG, logger="shipyard"):
        out, report = apply_pii(frame, PIIConfig(action="redact"))
    pd.testing.assert_frame_equal(frame, original)  # input untouched
    assert out["note"].tolist()[:3] == ["contact [EMAIL] or [PHONE]", "nothing here, order ORD-2023-004512",
                                        "card [CREDIT_CARD]"]  # fmt: skip
    assert pd.isna(out["note"].iloc[3])
    assert out["agent"].tolist() == ["[PERSON_NAME]", "team b", "team b", "team a"]
    assert out["ssn"].iloc[0] == "[US_SSN]"
    assert report["action"] == "redact"
    assert report["counts"] == {
        "note": {"credit_card": 1, "email": 1, "phone": 1},
        "agent": {"person_name": 1},
        "ssn": {"us_ssn": 1},
    }
    assert report["rows_affected"] == 2 and report["rows_dropped"] == 0
    assert "amount" not in report["columns"]
    _assert_no_values(report)
    _assert_no_values([r.getMessage() for r in caplog.records])
    assert any("pii redact" in r.getMessage() for r in caplog.records)


def test_apply_drop_rows(frame: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        out, report = apply_pii(frame, PIIConfig(action="drop_rows", types=["email", "credit_card"]))
    assert list(out.index) == [1, 3]
    assert report["rows_dropped"] == 2 and report["rows_affected"] == 2
    assert report["counts"]["note"] == {"credit_card": 1, "email": 1}
    assert report["counts"]["agent"] == {}
    _assert_no_values(report)
    _assert_no_values([r.getMessage() for r in caplog.records])


def test_apply_flag_with_columns(frame: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        out, report = apply_pii(frame, PIIConfig(action="flag", columns=["ssn"], placeholder="<{type}>"))
    assert out[FLAG_COLUMN].tolist() == [True, False, False, False]
    assert out[FLAG_COLUMN].dtype == bool
    assert out["ssn"].iloc[0] == "078-05-1120"  # flag does not change values
    assert report == {"action": "flag", "types": sorted(PII_TYPES), "columns": ["ssn"],
                      "counts": {"ssn": {"us_ssn": 1}}, "rows_affected": 1, "rows_dropped": 0}  # fmt: skip
    _assert_no_values([r.getMessage() for r in caplog.records])


def test_config_validation(frame: pd.DataFrame) -> None:
    with pytest.raises(ShipyardError, match=r"data\.pii\.action"):
        PIIConfig.from_mapping({"action": "delete"})
    with pytest.raises(ShipyardError, match=r"data\.pii\.bogus"):
        PIIConfig.from_mapping({"bogus": 1})
    with pytest.raises(ShipyardError, match="types"):
        PIIConfig.from_mapping({"types": ["passport"]})
    with pytest.raises(ShipyardError, match="placeholder"):
        PIIConfig.from_mapping({"placeholder": "[{value}]"})
    assert PIIConfig.from_mapping(None).action == "redact"
    with pytest.raises(ShipyardError, match="not in the data"):
        apply_pii(frame, PIIConfig(columns=["missing"]))


# ------------------------------------------------------------------------------------------------ eval set


def _load_bench():
    spec = importlib.util.spec_from_file_location("pii_eval_bench", ROOT / "bench" / "pii_eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_set_shape() -> None:
    rows = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 400
    assert sum(not r["entities"] for r in rows) >= 100  # many hard-negative lines
    for r in rows:
        for e in r["entities"]:
            assert e["type"] in PII_TYPES
            assert 0 <= e["start"] < e["end"] <= len(r["text"])


def test_eval_set_scores() -> None:
    bench = _load_bench()
    result = bench.evaluate(bench.load(EVAL_SET))
    overall = result["exact"]["overall"]
    assert overall["precision"] >= 0.95, overall
    assert overall["recall"] >= 0.95, overall


def test_eval_set_is_reproducible() -> None:
    spec = importlib.util.spec_from_file_location("make_pii_eval", EVAL_SET.with_name("make_pii_eval.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines()]
    assert module.build() == rows
