"""API keys for the REST service.

A key is ``sk_`` followed by 32 URL-safe random characters from :mod:`secrets` (192 bits). It is shown once, by
:meth:`KeyStore.create`; the database holds only a per-key random salt, an scrypt hash and the first 8 characters
(``sk_`` + 5) as a non-secret prefix that narrows the lookup. :meth:`KeyStore.verify` recomputes the hash of the
candidates with that prefix and compares with :func:`hmac.compare_digest`. A key whose prefix is not in the store
is refused before any hashing: the prefix is public (``keys list`` shows it), so hiding which prefixes exist gains
nothing, while hashing every unknown key would let anyone make the server burn an scrypt per request.

The scrypt cost is modest (n=2**12, r=8, p=1: about 4 MiB and a few ms) because the keys are random, not
passwords: guessing is hopeless either way, and the server pays the cost on every request. The parameters are
stored with each key, so raising ``SCRYPT_N`` later leaves old keys valid.

Creating and revoking a key writes an audit-log entry in the same transaction.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from shipyard.errors import ShipyardError
from shipyard.store.audit import insert_entry
from shipyard.store.db import StoreTable, parse_time, utc_now

logger = logging.getLogger(__name__)

Scope = Literal["predict", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)

KEY_PREFIX = "sk_"
KEY_RANDOM_CHARS = 32
PREFIX_LEN = 8
SCRYPT_N = 2**12
SCRYPT_R = 8
SCRYPT_P = 1
HASH_LEN = 32
SALT_LEN = 16

_KEY_RE = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{{KEY_RANDOM_CHARS}}}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


@dataclass(frozen=True)
class KeyRecord:
    """What is known about a key, never the key itself or its hash."""

    id: int
    name: str
    prefix: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _kdf_spec() -> str:
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}"


def _derive(plaintext: str, salt: bytes, kdf: str) -> bytes:
    kind, *params = kdf.split("$")
    if kind != "scrypt" or len(params) != 3:
        raise ShipyardError(f"unknown key hash scheme {kdf!r}", where="api_keys.kdf")
    n, r, p = (int(x) for x in params)
    return hashlib.scrypt(
        plaintext.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r * p + 2**20, dklen=HASH_LEN
    )


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scope=row["scope"],
        created_at=parse_time(row["created_at"]),  # type: ignore[arg-type]
        last_used_at=parse_time(row["last_used_at"]),
        revoked_at=parse_time(row["revoked_at"]),
    )


class KeyStore(StoreTable):
    """API keys in a SQLite file (usually ``<runs_root>/shipyard.db``). Safe to share between threads."""

    def create(self, name: str, scope: Scope, *, actor: str | None = None) -> str:
        """Create a key and return its plaintext. This is the only time the plaintext is available."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ShipyardError(
                f"invalid key name {name!r}",
                where="name",
                hint="1-64 characters: letters, digits, '_', '.', '@', '-', starting with a letter or digit",
            )
        if scope not in SCOPES:
            raise ShipyardError(f"unknown scope {scope!r}", where="scope", hint=f"one of {', '.join(SCOPES)}")
        plaintext = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_CHARS * 3 // 4)
        assert _KEY_RE.fullmatch(plaintext), "token_urlsafe gave an unexpected length"
        salt = secrets.token_bytes(SALT_LEN)
        kdf = _kdf_spec()
        key_hash = _derive(plaintext, salt, kdf)
        prefix = plaintext[:PREFIX_LEN]
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise ShipyardError(
                    f"an API key named {name!r} already exists",
                    where="name",
                    hint="choose another name, or revoke the old key first and use a new name",
                )
            conn.execute(
                "INSERT INTO api_keys (name, prefix, scope, kdf, salt, key_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, prefix, scope, kdf, salt, key_hash, utc_now()),
            )
            insert_entry(
                conn,
                action="key.create",
                actor=actor or _default_actor(),
                target=f"api_key:{name}",
                details={"name": name, "scope": scope, "prefix": prefix},
            )
        logger.info("created API key %r (%s, scope %s)", name, prefix, scope)
        return plaintext

    def verify(self, plaintext: str) -> KeyRecord | None:
        """The key's record if ``plaintext`` is a live key (and note the use), else None."""
        if not isinstance(plaintext, str) or not _KEY_RE.fullmatch(plaintext):
            return None
        with self.db.connect() as conn:
            rows = conn.execute("SELECT * FROM api_keys WHERE prefix = ?", (plaintext[:PREFIX_LEN],)).fetchall()
        match: sqlite3.Row | None = None
        for row in rows:
            if hmac.compare_digest(_derive(plaintext, row["salt"], row["kdf"]), row["key_hash"]):
                match = row
        if match is None or match["revoked_at"] is not None:
            return None
        now = utc_now()
        with self.db.connect() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, match["id"]))
        record = _record(match)
        return KeyRecord(**{**record.__dict__, "last_used_at": parse_time(now)})

    def list(self) -> list[KeyRecord]:
        """All keys (revoked included), oldest first. Never the secret."""
        with self.db.connect() as conn:
            rows = conn.execute("SELECT * FROM api_keys ORDER BY id").fetchall()
        return [_record(row) for row in rows]

    def get(self, name_or_prefix: str) -> KeyRecord:
        """The key with this exact name, or the one key whose prefix starts with ``name_or_prefix``."""
        with self.db.connect() as conn:
            return _record(self._find(conn, name_or_prefix))

    def revoke(self, name_or_prefix: str, *, actor: str | None = None) -> KeyRecord:
        """Revoke a key by name or prefix; it fails :meth:`verify` from then on."""
        now = utc_now()
        with self.db.transaction() as conn:
            row = self._find(conn, name_or_prefix)
            if row["revoked_at"] is not None:
                raise ShipyardError(f"API key {row['name']!r} was already revoked at {row['revoked_at']}", where="name")
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, row["id"]))
            insert_entry(
                conn,
                action="key.revoke",
                actor=actor or _default_actor(),
                target=f"api_key:{row['name']}",
                details={"name": row["name"], "scope": row["scope"], "prefix": row["prefix"]},
            )
            updated = conn.execute("SELECT * FROM api_keys WHERE id = ?", (row["id"],)).fetchone()
        logger.info("revoked API key %r (%s)", row["name"], row["prefix"])
        return _record(updated)

    @staticmethod
    def _find(conn: sqlite3.Connection, name_or_prefix: str) -> sqlite3.Row:
        if not isinstance(name_or_prefix, str) or not name_or_prefix:
            raise ShipyardError("give a key name or prefix", where="name")
        row = conn.execute("SELECT * FROM api_keys WHERE name = ?", (name_or_prefix,)).fetchone()
        if row is not None:
            return row
        rows: list[sqlite3.Row] = []
        if name_or_prefix.startswith(KEY_PREFIX) and len(name_or_prefix) > len(KEY_PREFIX):
            head = name_or_prefix[:PREFIX_LEN]
            rows = [
                r for r in conn.execute("SELECT * FROM api_keys ORDER BY id").fetchall() if r["prefix"].startswith(head)
            ]
        if len(rows) == 1:
            return rows[0]
        if not rows:
            names = [r["name"] for r in conn.execute("SELECT name FROM api_keys ORDER BY id").fetchall()]
            raise ShipyardError(
                f"no API key named or prefixed {name_or_prefix!r}",
                where="name",
                hint=f"known keys: {', '.join(names)}" if names else "no keys exist yet",
            )
        raise ShipyardError(
            f"key prefix {name_or_prefix!r} is ambiguous",
            where="name",
            hint=f"it matches {', '.join(r['name'] for r in rows)}; use the name",
        )
