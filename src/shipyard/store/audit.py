"""Append-only audit log: who did what to which target, and when.

Used for data-erasure requests and API-key changes. The class has no update or delete methods, and the table
carries triggers that make SQLite refuse any UPDATE or DELETE, so an entry once written stays written.
Never put secrets (API keys, personal data being erased) in ``details``.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.store.db import StoreTable, dumps, loads, parse_time, utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    at: datetime
    action: str
    actor: str
    target: str
    details: dict[str, Any]


def insert_entry(conn: sqlite3.Connection, *, action: str, actor: str, target: str, details: dict[str, Any]) -> int:
    """Write one entry through an open connection (so a caller can make it part of its own transaction)."""
    for field, value in (("action", action), ("actor", actor), ("target", target)):
        if not isinstance(value, str) or not value.strip():
            raise ShipyardError(f"audit {field} must be a non-empty string, got {value!r}", where=field)
    if not isinstance(details, dict):
        raise ShipyardError(f"audit details must be a dict, got {type(details).__name__}", where="details")
    cursor = conn.execute(
        "INSERT INTO audit_log (at, action, actor, target, details) VALUES (?, ?, ?, ?, ?)",
        (utc_now(), action, actor, target, dumps(details, field="details")),
    )
    logger.info("audit: %s by %s on %s", action, actor, target)
    return int(cursor.lastrowid or 0)


class AuditLog(StoreTable):
    """The audit log in a SQLite file (usually ``<runs_root>/shipyard.db``)."""

    def record(self, action: str, actor: str, target: str, details: dict[str, Any]) -> int:
        """Append an entry; returns its id."""
        with self.db.transaction() as conn:
            return insert_entry(conn, action=action, actor=actor, target=target, details=details)

    def entries(self, target: str | None = None, *, action: str | None = None) -> list[AuditEntry]:
        """Entries oldest first, optionally only those for one target and/or one action."""
        sql = "SELECT * FROM audit_log"
        clauses: list[str] = []
        params: list[str] = []
        if target is not None:
            clauses.append("target = ?")
            params.append(target)
        if action is not None:
            clauses.append("action = ?")
            params.append(action)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id"
        with self.db.connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            AuditEntry(
                id=row["id"],
                at=parse_time(row["at"]),  # type: ignore[arg-type]
                action=row["action"],
                actor=row["actor"],
                target=row["target"],
                details=loads(row["details"]),
            )
            for row in rows
        ]
