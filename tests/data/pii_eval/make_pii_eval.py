"""Write ``pii_eval.jsonl``: the labelled evaluation set of the PII detector (``shipyard.data.pii``).

Run ``python tests/data/pii_eval/make_pii_eval.py`` to regenerate it; the output is fully determined by the seed.
Each line is ``{"text": ..., "entities": [{"type", "start", "end"}, ...]}`` (spans are half-open character
offsets). Lines come from two sources:

- templates (customer-service messages, banking notes, log lines; English, German, French, Spanish, Italian,
  Dutch and Chinese formats) whose slots are filled by value generators. Positive values are valid by
  construction (Luhn, mod-97, ISO 7064 MOD 11-2, SSN ranges) and each generator asserts it; hard negatives
  (order/invoice/tracking numbers, dates, versions, ISBNs, bad checksums, invalid SSN ranges, prices, times,
  post codes, product codes, MAC addresses, invalid IPs) are checked to be invalid.
- ``HAND_WRITTEN``: tricky lines written by hand, with the entities marked inline as ``[[type|value]]``.

This script has no dependency on the detector: validity is checked with its own small checksum functions.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

SEED = 20240315
N_GENERATED = 450
OUT = Path(__file__).with_name("pii_eval.jsonl")

# --------------------------------------------------------------------------------------------------------------
# independent checksum helpers


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def luhn_complete(partial: str) -> str:
    for d in "0123456789":
        if luhn_ok(partial + d):
            return partial + d
    raise AssertionError("unreachable")


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def iban_make(country: str, bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    iban = f"{country}{check:02d}{bban}"
    assert iban_ok(iban)
    return iban


CN_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_check(first17: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, CN_W, strict=True)) % 11]


# --------------------------------------------------------------------------------------------------------------
# value generators: each returns (text, type or None)

Gen = Callable[[random.Random], tuple[str, str | None]]

FIRST = [
    "John", "Maria", "Anna", "James", "Sarah", "David", "Laura", "Michael", "Elena", "Thomas", "Sophie", "Daniel",
    "Emma", "Lucas", "Julia", "Peter", "Claire", "Carlos", "Fatima", "Ahmed", "Priya", "Rahul", "Wei", "Olga",
    "Ivan", "Katarzyna", "Piotr", "Giulia", "Marco", "Hans", "Sabine", "Pierre", "Camille", "Jorge", "Lucia",
    "Robert", "Jennifer", "Linda", "Kevin", "Rachel", "Oliver", "Isabel", "Stefan", "Nina", "Hiroshi", "Yuki",
    "Jose", "Ana", "Mohammed", "Aisha", "Liam", "Chloe", "Patrick", "Siobhan", "Mehmet", "Elif",
]  # fmt: skip
LAST = [
    "Smith", "Johnson", "Garcia", "Martinez", "Müller", "Schmidt", "Dubois", "Moreau", "Rossi", "Bianchi",
    "Kowalski", "Nowak", "Ivanova", "Petrov", "Patel", "Sharma", "Wang", "Chen", "Tanaka", "Suzuki", "O'Brien",
    "McDonald", "Fernández", "López", "Jensen", "Nielsen", "Novak", "Horvat", "Yilmaz", "Kaya", "Okafor",
    "Nguyen", "Kim", "Park", "Silva", "Santos", "Taylor", "Brown", "Wilson", "Anderson", "Thompson", "Walker",
    "Weber", "Fischer", "Lambert", "Fontaine", "Ricci", "Greco", "Hughes", "Kelly", "Murphy", "Andersen",
]  # fmt: skip
DOMAINS = ["example.com", "mail.example.org", "shop-online.de", "example.co.uk", "posteo.de", "kunde.example.net",
           "banque-exemple.fr", "correo.example.es", "qq.example.cn", "corp.example.io"]  # fmt: skip


def g_email(r: random.Random) -> tuple[str, str | None]:
    f, last = r.choice(FIRST).lower(), re.sub(r"[^a-z]", "", r.choice(LAST).lower()) or "user"
    local = r.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{r.randint(1, 99)}", f"{f}+billing", f"{last}.{f}"])
    return f"{local}@{r.choice(DOMAINS)}", "email"


def _d(r: random.Random, n: int) -> str:
    return "".join(r.choice(string.digits) for _ in range(n))


def g_phone(r: random.Random) -> tuple[str, str | None]:
    fmts: list[Callable[[], str]] = [
        lambda: f"+44 20 7946 {_d(r, 4)}",
        lambda: f"+44 7700 900{_d(r, 3)}",
        lambda: f"+44 (0)20 7946 {_d(r, 4)}",
        lambda: f"+1 (415) 555-{_d(r, 4)}",
        lambda: f"+1 212-555-{_d(r, 4)}",
        lambda: f"({r.randint(201, 989)}) 555-{_d(r, 4)}",
        lambda: f"{r.randint(201, 989)}-555-{_d(r, 4)}",
        lambda: f"{r.randint(201, 989)}.555.{_d(r, 4)}",
        lambda: f"020 7946 {_d(r, 4)}",
        lambda: f"0044 20 7946 {_d(r, 4)}",
        lambda: f"+86 138 {_d(r, 4)} {_d(r, 4)}",
        lambda: f"+86 {r.choice(['139', '186', '150'])}{_d(r, 8)}",
        lambda: f"+49 30 {_d(r, 8)}",
        lambda: f"+49 171 {_d(r, 7)}",
        lambda: f"030 {_d(r, 8)}",
        lambda: f"0171 {_d(r, 7)}",
        lambda: f"+33 1 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}",
        lambda: f"01 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}",
        lambda: f"06 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}",
        lambda: f"+34 612 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}",
        lambda: f"+39 06 {_d(r, 8)}",
        lambda: f"+31 20 {_d(r, 3)} {_d(r, 4)}",
        lambda: f"+91 98765 {_d(r, 5)}",
        lambda: f"+61 2 9876 {_d(r, 4)}",
        lambda: f"+81 3-{_d(r, 4)}-{_d(r, 4)}",
        lambda: f"138 {_d(r, 4)} {_d(r, 4)}",
        lambda: f"07700 900{_d(r, 3)}",
    ]
    return r.choice(fmts)(), "phone"


CARD_PREFIXES = [("4", 16), ("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                 ("6011", 16), ("3530", 16), ("62", 16), ("36", 14), ("4", 13)]  # fmt: skip


def _card_digits(r: random.Random) -> str:
    prefix, n = r.choice(CARD_PREFIXES)
    return luhn_complete(prefix + _d(r, n - len(prefix) - 1))


def _group_card(digits: str, sep: str) -> str:
    if len(digits) in (14, 15):
        parts = [digits[:4], digits[4:10], digits[10:]]
    else:
        parts = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return sep.join(parts) if sep is not None else digits


def g_card(r: random.Random) -> tuple[str, str | None]:
    digits = _card_digits(r)
    assert luhn_ok(digits)
    return r.choice([_group_card(digits, " "), _group_card(digits, "-"), digits]), "credit_card"


def g_card_bad_luhn(r: random.Random) -> tuple[str, str | None]:
    digits = _card_digits(r)
    bad = digits[:-1] + str((int(digits[-1]) + r.randint(1, 9)) % 10)
    assert not luhn_ok(bad)
    return r.choice([_group_card(bad, " "), bad]), None


def g_random16(r: random.Random) -> tuple[str, str | None]:
    while True:
        digits = str(r.randint(1, 9)) + _d(r, 15)
        if not luhn_ok(digits):
            return digits, None


IBAN_SPECS: list[tuple[str, Callable[[random.Random], str]]] = [
    ("DE", lambda r: _d(r, 18)),
    ("GB", lambda r: r.choice(["NWBK", "BARC", "HBUK", "MIDL", "LOYD"]) + _d(r, 14)),
    (
        "FR",
        lambda r: _d(r, 10) + "".join(r.choice(string.ascii_uppercase + string.digits) for _ in range(11)) + _d(r, 2),
    ),
    ("NL", lambda r: r.choice(["ABNA", "INGB", "RABO"]) + _d(r, 10)),
    ("ES", lambda r: _d(r, 20)),
    ("IT", lambda r: r.choice(string.ascii_uppercase) + _d(r, 10) + _d(r, 12)),
    ("BE", lambda r: _d(r, 12)),
    ("PL", lambda r: _d(r, 24)),
    ("AT", lambda r: _d(r, 16)),
    ("CH", lambda r: _d(r, 5) + _d(r, 12)),
]


def _iban_value(r: random.Random) -> str:
    country, bban = r.choice(IBAN_SPECS)
    return iban_make(country, bban(r))


def _space4(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def g_iban(r: random.Random) -> tuple[str, str | None]:
    iban = _iban_value(r)
    return (_space4(iban) if r.random() < 0.6 else iban), "iban"


def g_iban_bad(r: random.Random) -> tuple[str, str | None]:
    iban = _iban_value(r)
    while True:
        cd = f"{r.randint(2, 98):02d}"
        bad = iban[:2] + cd + iban[4:]
        if not iban_ok(bad):
            break
    return (_space4(bad) if r.random() < 0.6 else bad), None


def g_ipv4(r: random.Random) -> tuple[str, str | None]:
    first = r.choice([10, 172, 192, 203, 198, 51, 85, 91, 8, 100])
    return f"{first}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}", "ipv4"


def g_ipv4_bad(r: random.Random) -> tuple[str, str | None]:
    return f"{r.randint(256, 999)}.{r.randint(0, 255)}.{r.randint(0, 999)}.{r.randint(1, 400)}", None


def g_ipv6(r: random.Random) -> tuple[str, str | None]:
    kind = r.randint(0, 4)
    if kind == 0:
        return "::1", "ipv6"
    if kind == 1:
        return f"fe80::{r.randint(1, 0xFFFF):x}:{r.randint(1, 0xFFFF):x}", "ipv6"
    if kind == 2:
        return f"::ffff:192.0.2.{r.randint(1, 254)}", "ipv6"
    addr = ipaddress.IPv6Address(
        (0x20010DB8 << 96) | (r.getrandbits(32) << 64 if r.random() < 0.5 else 0) | r.getrandbits(16)
    )
    return (addr.compressed if kind == 3 else addr.exploded), "ipv6"


def g_ssn(r: random.Random) -> tuple[str, str | None]:
    area = r.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}", "us_ssn"


def g_ssn_bad(r: random.Random) -> tuple[str, str | None]:
    kind = r.randint(0, 4)
    area, group, serial = r.randint(1, 665), r.randint(1, 99), r.randint(1, 9999)
    if kind == 0:
        area = 0
    elif kind == 1:
        area = 666
    elif kind == 2:
        area = r.randint(900, 999)
    elif kind == 3:
        group = 0
    else:
        serial = 0
    return f"{area:03d}-{group:02d}-{serial:04d}", None


REGIONS = ["110105", "310104", "440305", "510107", "320102", "330106", "420111", "500103", "610113", "210102"]


def _cn_first17(r: random.Random) -> str:
    born = dt.date(1950, 1, 1) + dt.timedelta(days=r.randint(0, 20000))
    return r.choice(REGIONS) + born.strftime("%Y%m%d") + _d(r, 3)


def g_cn_id(r: random.Random) -> tuple[str, str | None]:
    first = _cn_first17(r)
    return first + cn_check(first), "cn_resident_id"


def g_cn_id_bad(r: random.Random) -> tuple[str, str | None]:
    first = _cn_first17(r)
    if r.random() < 0.5:
        wrong = r.choice([c for c in "0123456789X" if c != cn_check(first)])
        return first + wrong, None
    first = first[:10] + "1345" + first[14:]  # 13th month, 45th day
    return first + cn_check(first), None


def g_url_cred(r: random.Random) -> tuple[str, str | None]:
    scheme = r.choice(["postgres", "postgresql", "mysql", "https", "ftp", "redis", "amqp", "mongodb", "http"])
    user = r.choice(["admin", "svc_etl", "root", "deploy", "app", "backup", "jdoe"])
    pw = "".join(r.choice(string.ascii_letters + string.digits + "!$*") for _ in range(r.randint(6, 14)))
    host = r.choice(["db.internal", "10.0.3.17", "cache.prod.example.net", "ftp.example.com", "mq-01.local"])
    port = r.choice(["", ":5432", ":3306", ":6379", ":21", ":8443"])
    return f"{scheme}://{user}:{pw}@{host}{port}", "url_credentials"


def g_name(r: random.Random) -> tuple[str, str | None]:
    return f"{r.choice(FIRST)} {r.choice(LAST)}", "person_name"


def g_surname(r: random.Random) -> tuple[str, str | None]:
    return r.choice(LAST), "person_name"


def g_honorific(r: random.Random) -> tuple[str, str | None]:
    return r.choice(["Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Mr", "Ms", "Dr"]), None


# --- hard negatives ---------------------------------------------------------------------------------------


def neg(*options: Callable[[random.Random], str]) -> Gen:
    return lambda r: (r.choice(options)(r), None)


g_order = neg(
    lambda r: f"ORD-{r.randint(2019, 2025)}-{_d(r, 6)}",
    lambda r: f"#{r.randint(100000000, 999999999)}",
    lambda r: f"order {_d(r, 8)}",
    lambda r: f"PO-{_d(r, 5)}",
)
g_date = neg(
    lambda r: f"{r.randint(2019, 2025)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    lambda r: f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(2019, 2025)}",
    lambda r: f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/{r.randint(2019, 2025)}",
    lambda r: f"{r.randint(1, 28):02d}.{r.randint(1, 12):02d}.{r.randint(2019, 2025)}",
    lambda r: f"{r.randint(2019, 2025)}年{r.randint(1, 12)}月{r.randint(1, 28)}日",
)
g_version = neg(
    lambda r: f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 20)}.{r.randint(0, 99)}",
    lambda r: f"version {r.randint(1, 12)}.{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 999)}",
    lambda r: f"build {r.randint(1, 12)}.{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 250)}",
    lambda r: f"10.0.{r.randint(10000, 22631)}.{r.randint(1000, 3000)}",
)
g_isbn = neg(
    lambda r: f"ISBN 978-{r.randint(0, 9)}-{_d(r, 2)}-{_d(r, 6)}-{r.randint(0, 9)}",
    lambda r: f"ISBN {r.randint(0, 1)}-{_d(r, 3)}-{_d(r, 5)}-{r.randint(0, 9)}",
    lambda r: f"ISBN 978{_d(r, 10)}",
)
g_tracking = neg(
    lambda r: f"1Z{_d(r, 3)}AA{_d(r, 10)}",
    lambda r: f"9400 {_d(r, 4)} {_d(r, 4)} {_d(r, 4)} {_d(r, 4)} {_d(r, 2)}",
    lambda r: f"JD{_d(r, 18)}",
    lambda r: f"LX{_d(r, 9)}CN",
)
g_invoice = neg(
    lambda r: f"INV-{r.randint(2019, 2025)}-{_d(r, 5)}",
    lambda r: f"invoice {r.randint(2019, 2025)}/{_d(r, 4)}",
    lambda r: f"RE-{_d(r, 7)}",
)
g_price = neg(
    lambda r: f"${r.randint(1, 9)},{_d(r, 3)}.{_d(r, 2)}",
    lambda r: f"€{r.randint(1, 999)}.{_d(r, 2)}",
    lambda r: f"{r.randint(1, 9)}.{_d(r, 3)},{_d(r, 2)} €",
    lambda r: f"£{r.randint(10, 999)}",
    lambda r: f"¥{r.randint(100, 99999)}",
)
g_time = neg(
    lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
    lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
    lambda r: f"{r.randint(1, 12)}:{r.randint(0, 59):02d} pm",
)
g_zip = neg(
    lambda r: _d(r, 5),
    lambda r: f"{_d(r, 5)}-{_d(r, 4)}",
    lambda r: r.choice(["SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE"]),
    lambda r: f"{r.randint(1000, 9999)} AB",
)
g_product = neg(
    lambda r: f"SKU-{_d(r, 5)}-{r.choice(['BLK', 'WHT', 'RED'])}",
    lambda r: f"P/N {_d(r, 4)}-{_d(r, 3)}-{_d(r, 4)}",
    lambda r: f"model XR-{_d(r, 4)}",
    lambda r: f"EAN {_d(r, 13)}",
)
g_mac = neg(lambda r: ":".join(f"{r.randint(0, 255):02X}" for _ in range(6)))
g_lone_name = neg(lambda r: r.choice(FIRST))

GENS: dict[str, Gen] = {
    "email": g_email, "phone": g_phone, "card": g_card, "card_bad": g_card_bad_luhn, "rand16": g_random16,
    "iban": g_iban, "iban_bad": g_iban_bad, "ipv4": g_ipv4, "ipv4_bad": g_ipv4_bad, "ipv6": g_ipv6,
    "ssn": g_ssn, "ssn_bad": g_ssn_bad, "cn_id": g_cn_id, "cn_id_bad": g_cn_id_bad, "url_cred": g_url_cred,
    "name": g_name, "surname": g_surname, "hon": g_honorific, "order": g_order, "date": g_date,
    "version": g_version, "isbn": g_isbn, "tracking": g_tracking, "invoice": g_invoice, "price": g_price,
    "time": g_time, "zip": g_zip, "product": g_product, "mac": g_mac, "first": g_lone_name,
}  # fmt: skip

POSITIVE_TEMPLATES = [
    "Hi, this is {name}, please call me back on {phone} regarding my refund.",
    "Customer {name} ({email}) reports a double charge of {price} on {date}.",
    "You can reach me at {phone} or by email: {email}",
    "Please update my contact number to {phone}, the old one no longer works.",
    "Tel: {phone} | Fax: {phone}",
    "Bitte rufen Sie mich unter {phone} an, Ihre Bestellung {order} ist noch offen.",
    "Vous pouvez me joindre au {phone} après {time}.",
    "Mi teléfono es {phone} y mi correo {email}.",
    "我的手机号是{phone}，订单号{order}。",
    "Card number {card}, expiry 09/27, please refund {price}.",
    "I was charged twice on card {card} on {date}.",
    "Payment declined for card {card} at {time} (amount {price}).",
    "Please transfer the deposit to IBAN {iban}, reference {invoice}.",
    "Bitte überweisen Sie den Betrag auf das Konto {iban} bis zum {date}.",
    "Mijn IBAN is {iban}, graag terugbetalen.",
    "Veuillez virer {price} sur le compte {iban}.",
    "Beneficiary: {name}, IBAN {iban}, BIC COBADEFFXXX",
    "2024-03-15T10:22:31Z INFO login ok user_id=88123 ip={ipv4} ua=Mozilla/5.0",
    "[{time}] WARN too many requests from {ipv4} (limit 100/min)",
    "sshd[2231]: Failed password for invalid user admin from {ipv4} port 51234 ssh2",
    "GET /api/v2/orders 200 12ms client={ipv6}",
    "connection from {ipv6} rejected: TLS handshake failed",
    "upstream {ipv4}:8080 timed out after {time}",
    "Applicant SSN {ssn}, DOB {date}.",
    "The form lists a social security number of {ssn} for {name}.",
    "W-2 on file: employee {ssn}, tax year 2023",
    "身份证号码：{cn_id}，请核实。",
    "Customer ID document: PRC resident ID {cn_id} (verified on {date})",
    "开户人身份证{cn_id}，联系电话{phone}",
    "ERROR db connect failed dsn={url_cred}/orders sslmode=require",
    "config: DATABASE_URL={url_cred}/app",
    "Mirror fetch from {url_cred}/pub/releases/ failed",
    "Dear {hon} {surname}, thank you for contacting us about {order}.",
    "Ticket assigned to {name}; customer {name} called on {date}.",
    "Escalated by {hon} {surname} (billing team) at {time}.",
    "Kind regards, {name}",
    "Please send the documents to {email} before {date}.",
    "Account holder {name}, card {card}, phone {phone}",
    "From: {name} <{email}>",
    "{hon} {name} wants to close the account {iban}.",
    "login failure for {email} from {ipv4} at {time}",
    "Call {name} on {phone} about the {product} replacement.",
    "Il numero del cliente è {phone}, email {email}.",
    "Contacto: {name}, tel. {phone}",
    "Refund of {price} to {card} approved by {hon} {surname}.",
]
NEGATIVE_TEMPLATES = [
    "Your order {order} has shipped, tracking {tracking}, estimated delivery {date}.",
    "Invoice {invoice} dated {date}, total {price} (VAT incl.)",
    "Running {version} on host build-agent-3, started at {time}.",
    "Please update to {version}; the release notes are in the wiki.",
    "Book {isbn} is back in stock for {price}.",
    "Item {product} out of stock, restock expected {date}.",
    "Our office is open {time}-{time}, post code {zip}.",
    "Card ending in {zip} was updated on {date}.",
    "Reference number {rand16} could not be matched to a payment.",
    "Transaction id {rand16} settled at {time}.",
    "The card number {card_bad} was rejected as invalid.",
    "IBAN {iban_bad} is invalid (checksum error), please check.",
    "Form rejected: SSN {ssn_bad} is not a valid number.",
    "ID number {cn_id_bad} failed verification.",
    "invalid address {ipv4_bad} in config line 12",
    "device {mac} joined the network at {time}",
    "Hi {first}, thanks for your patience with order {order}.",
    "Tracking {tracking} - parcel held at depot since {date}.",
    "Order {order} for {price}, invoice {invoice}.",
    "Shipment {tracking} delayed; new date {date} {time}.",
    "Firmware {version} fixes the battery drain issue.",
    "Promo code SPRING24 gives {price} off orders over {price}.",
    "Ticket #{zip}: customer asked about {product}.",
    "Meeting moved to {date} at {time} in room 4.12.",
    "Bestellung {order} vom {date}, Rechnung {invoice}, Betrag {price}.",
    "Commande {order} du {date}, montant {price}.",
    "订单{order}已于{date}发货，运单号{tracking}。",
    "Thanks {first}! Your case {order} is now closed.",
    "Visa Platinum and Mastercard Gold cards are accepted at Customer Service.",
    "Batch {rand16} processed: 1,234 rows in {time}.",
]


def render(template: str, r: random.Random) -> dict:
    text = ""
    entities = []
    pos = 0
    for m in re.finditer(r"\{(\w+)\}", template):
        text += template[pos : m.start()]
        value, etype = GENS[m.group(1)](r)
        if etype is not None:
            entities.append({"type": etype, "start": len(text), "end": len(text) + len(value)})
        text += value
        pos = m.end()
    text += template[pos:]
    return {"text": text, "entities": entities}


# --------------------------------------------------------------------------------------------------------------
# hand-written tricky lines: entities marked as [[type|value]]

HAND_WRITTEN = [
    "Call me at [[phone|+1 (415) 555-2671]] after 5pm, not at the office.",
    "UK office: [[phone|+44 20 7946 0958]]; from abroad dial [[phone|0044 20 7946 0958]].",
    "Beijing team: [[phone|+86 138 0013 8000]], hotline 400 in China only.",
    "NY desk [[phone|(212) 555-1234]], London [[phone|020 7946 0958]]",
    "phone: [[phone|4155552671]] (no dashes, sorry)",
    "Order ORD-2023-004512 and order #100234567 were merged.",
    "Shipped on 2024-03-15, delivered 15/03/2024 at 14:30.",
    "Agent upgraded to v1.2.3.4, OS version 10.0.19045.2846.",
    "build 1.2.3.4 is deployed to staging; server at [[ipv4|10.20.30.40]] picked it up.",
    "Windows 10.0.19045.2846 reported crash at 0x7ff6a1b2",
    "The ISBN 978-3-16-148410-0 edition costs $24.99.",
    "UPS 1Z999AA10123456784 and USPS 9400 1000 0000 0000 0000 00 both delayed.",
    "Invoice INV-2024-00871 is overdue by 14 days.",
    "Card 4111 1111 1111 1112 failed validation (typo?)",
    "Test card [[credit_card|4111 1111 1111 1111]] is for sandbox use only.",
    "Amex [[credit_card|3782 822463 10005]] was charged €12.50",
    "Mastercard [[credit_card|5555-5555-5555-4444]] exp 10/26",
    "IBAN [[iban|GB82 WEST 1234 5698 7654 32]] (valid) vs GB82 WEST 1234 5698 7654 33 (typo).",
    "Konto: [[iban|DE89370400440532013000]]",
    "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum.",
    "SSN [[us_ssn|078-05-1120]] appears in the famous wallet card case.",
    "Invalid SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000.",
    "身份证号[[cn_resident_id|11010519491231002X]]已登记。",
    "ID 110105194912310021 has a wrong check digit.",
    "ID 110105194913310024 has an impossible birth month.",
    "Connect with [[url_credentials|postgres://admin:s3cr3t@db.internal:5432]]/prod",
    "Public docs at https://docs.example.com/guide?lang=en need no login.",
    "git clone https://github.com/example/repo.git",
    "Email [[email|jane.doe@example.co.uk]] or [[email|j.doe+billing@mail.example.org]]",
    "Mention @support on Twitter, not support@ anything.",
    "Price: $1,299.99, was $1,499.00; save 13%.",
    "Our zip is 94105 and the store is at 1455 Market St.",
    "Product code XR-2200-BLK-16GB in stock.",
    "Spoke with [[person_name|John Smith]] and [[person_name|Maria Garcia]] about the refund.",
    "Dr. [[person_name|Patel]] will review the claim; Ms. [[person_name|O'Brien]] approved it.",
    "Signed: [[person_name|Anna van der Berg]], Amsterdam",
    "Mr. [[person_name|Chen Wei]] asked for a callback.",
    "Hello Sarah, your ticket has been updated.",
    "Visa Platinum benefits apply to all Customer Service requests.",
    "Meeting with Customer Success on Monday at 10:00.",
    "server [[ipv6|2001:db8::8a2e:370:7334]] and [[ipv6|::1]] are allowed",
    "link-local [[ipv6|fe80::1ff:fe23:4567:890a]] seen on eth0",
    "MAC 00:1A:2B:3C:4D:5E is not an IP address.",
    "Time 12:30:45 and ratio 3:2:1 are not addresses.",
    "Bad IP 256.100.1.1 and 192.168.1 were ignored.",
    "Gateway [[ipv4|192.168.1.1]], DNS [[ipv4|8.8.8.8]].",
    "OID 1.3.6.1.4.1.9 is an SNMP path.",
    "Random number 4539578763621487 from the batch job.",
    "Teléfono: [[phone|+34 612 34 56 78]], pedido 2024-0042.",
    "Téléphone : [[phone|01 23 45 67 89]], commande 4521987.",
    "Handy [[phone|0171 1234567]], Kundennummer 4711.",
    "Ticket #4155552671 was closed.",
    "Order number 02079460958 shipped.",
    "Reach [[person_name|Emma Thompson]] at [[email|emma.t@example.com]] or [[phone|+44 7700 900123]].",
    "From [[ipv4|203.0.113.7]] user [[email|ops@example.net]] used [[url_credentials|ftp://backup:pa55word@ftp.example.com]]",
    "Paid with UnionPay [[credit_card|6212345678901232]] on 2024/03/15",
    "Transfer ref 2024-03-15-0042 of 1.234,56 € to [[iban|FR14 2004 1010 0505 0001 3M02 606]]",
    "Version: 4.18.2.1 (build 2231)",
    "SKU 400-123-4567 is a cable, not a phone number.",
    "Tracking number 420 94105 9205 5000 0000 0000 00 for the parcel.",
    "The patient, [[person_name|Jean Dupont]], called from [[phone|06 12 34 56 78]].",
    "Prof. [[person_name|Müller]] and Dr [[person_name|Schmidt]] signed the report.",
    "Chase Bank and Wells Fargo branches are closed on Sunday.",
    "Please note: John Lewis gift cards cannot be refunded.",
    "Contact [[person_name|Rosalind Featherstonehaugh]] for details.",
    "Customer [[person_name|Ngozi Okonkwo]] called twice about the same issue.",
    "Spoke with Mrs. [[person_name|Hargreaves-Smith]] on the phone.",
    "Write to [[email|john(at)example(dot)com]] if the form fails.",
    "My number is [[phone|07700 900 123]], text me anytime.",
    "Reach me on WhatsApp: [[phone|+971 50 123 4567]]",
    "SSN: [[us_ssn|123 45 6789]] (spaces as written on the form)",
    "Kontonummer [[iban|DE44 5001 0517 5407 3249 31]], Inhaber unbekannt",
    "IBAN:[[iban|NL91ABNA0417164300]]; amount 250,00 EUR",
    "客户[[person_name|张伟]]的电话是 [[phone|139-1234-5678]]",
    "Phone [[phone|555-0199]] is the fictional number from the ad.",
    "His card is [[credit_card|4111111111111111]].",
    "Call [[phone|+44 20 7946 0958]] ext. 214 for claims.",
    "proxy at [[ipv4|10.0.0.1]]:8080 (http) and [[ipv6|2001:db8:85a3::8a2e:370:7334]] (v6)",
]


def parse_hand_written(line: str) -> dict:
    text = ""
    entities = []
    pos = 0
    for m in re.finditer(r"\[\[(\w+)\|(.+?)\]\]", line):
        text += line[pos : m.start()]
        etype, value = m.group(1), m.group(2)
        compact = re.sub(r"[ -]", "", value)
        if etype == "credit_card":
            assert luhn_ok(compact), value
        elif etype == "iban":
            assert iban_ok(compact), value
        elif etype == "cn_resident_id":
            assert cn_check(compact[:17]) == compact[17], value
        entities.append({"type": etype, "start": len(text), "end": len(text) + len(value)})
        text += value
        pos = m.end()
    text += line[pos:]
    return {"text": text, "entities": entities}


def build() -> list[dict]:
    r = random.Random(SEED)
    rows = []
    for i in range(N_GENERATED):
        templates = POSITIVE_TEMPLATES if i % 5 < 3 else NEGATIVE_TEMPLATES
        rows.append(render(r.choice(templates), r))
    rows.extend(parse_hand_written(line) for line in HAND_WRITTEN)
    return rows


def main() -> None:
    rows = build()
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    n_ent = sum(len(row["entities"]) for row in rows)
    n_neg = sum(not row["entities"] for row in rows)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger(__name__).info(
        "wrote %d lines (%d entities, %d lines without entities) to %s", len(rows), n_ent, n_neg, OUT
    )


if __name__ == "__main__":
    main()
