"""The assistant's SQLite store: conversations and their turns (personal data redacted before it is written),
each conversation's context (the last order number), the human queue (tickets) and feedback.

The file is created 0600. Text is passed through `shipyard.data.pii.redact` first, so e-mail addresses, phone and
card numbers never reach the disk; order numbers are kept (they are what a follow-up needs). `purge` deletes
conversations idle longer than the retention (with their turns, feedback and closed tickets); `forget` deletes one
conversation on request. `export_feedback` writes what retraining uses (see docs/support.md).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipyard.data.pii import redact
from shipyard.errors import ShipyardError
from shipyard.io import PRIVATE_MODE

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS conversations (
        id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,
        order_id TEXT, unhelpful INTEGER NOT NULL DEFAULT 0, escalated INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL REFERENCES conversations(id)
        ON DELETE CASCADE, role TEXT NOT NULL, text TEXT NOT NULL, intent TEXT, confidence REAL,
        passage_id INTEGER, escalated INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tickets (
        id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL REFERENCES conversations(id)
        ON DELETE CASCADE, reason TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open', created REAL NOT NULL,
        closed REAL, agent TEXT)""",
    """CREATE TABLE IF NOT EXISTS feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT, turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
        helpful INTEGER, correct_intent TEXT, correct_passage_id INTEGER, source TEXT NOT NULL,
        created REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id)",
    "CREATE INDEX IF NOT EXISTS tickets_by_status ON tickets(status)",
)


class SupportStore:
    def __init__(self, path: Path, *, redact_types: list[str] | None = None, retention_days: int = 30) -> None:
        self.path = Path(path)
        self.redact_types = set(redact_types) if redact_types else None
        self.retention_s = retention_days * 86400
        self._local_lock = threading.RLock()  # re-entrant: as before, a nested call meets SQLite, not a deadlock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, PRIVATE_MODE))
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:  # WAL (readers never wait for the writer) is set outside any transaction
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise ShipyardError(f"support store error: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()
        with self._tx() as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # one transaction at a time per process: 64 request threads queue on this lock instead of on SQLite's
        # write lock, whose busy timeout a writer starved of the GIL (while others embed queries) could run out
        # (bench/support.py hit "database is locked" that way on a loaded machine); other processes still wait
        # on busy_timeout
        with self._local_lock:
            yield from self._tx_unlocked()

    def _tx_unlocked(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise ShipyardError(f"support store error: {exc}", where=str(self.path)) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def clean(self, text: str) -> str:
        return redact(text, self.redact_types)

    # ------------------------------------------------------------------ conversations
    def new_conversation(self) -> str:
        cid = secrets.token_urlsafe(12)
        now = time.time()
        with self._tx() as conn:
            conn.execute("INSERT INTO conversations (id, created, updated) VALUES (?, ?, ?)", (cid, now, now))
        return cid

    def conversation(self, cid: str) -> dict[str, Any]:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id, created, updated, order_id, unhelpful, escalated FROM conversations WHERE id = ?", (cid,)
            ).fetchone()
            if row is None:
                raise ShipyardError("no such conversation", where=f"conversation {cid!r}")
            turns = conn.execute(
                "SELECT id, role, text, intent, confidence, passage_id, escalated, created FROM turns "
                "WHERE conversation_id = ? ORDER BY id",
                (cid,),
            ).fetchall()
        keys = ("id", "role", "text", "intent", "confidence", "passage_id", "escalated", "created")
        return {
            "id": row[0],
            "created": row[1],
            "updated": row[2],
            "order_id": row[3],
            "unhelpful": row[4],
            "escalated": bool(row[5]),
            "turns": [dict(zip(keys, t, strict=True)) for t in turns],
        }

    def add_turn(
        self,
        cid: str,
        role: str,
        text: str,
        *,
        intent: str | None = None,
        confidence: float | None = None,
        passage_id: int | None = None,
        escalated: bool = False,
        order_id: str | None = None,
    ) -> int:
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO turns (conversation_id, role, text, intent, confidence, passage_id, escalated, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, role, self.clean(text), intent, confidence, passage_id, int(escalated), now),
            )
            conn.execute(
                "UPDATE conversations SET updated = ?, order_id = COALESCE(?, order_id), "
                "escalated = MAX(escalated, ?) WHERE id = ?",
                (now, order_id, int(escalated), cid),
            )
            return int(cur.lastrowid or 0)

    # ------------------------------------------------------------------ tickets
    def open_ticket(self, cid: str, reason: str) -> int:
        with self._tx() as conn:
            found = conn.execute(
                "SELECT id FROM tickets WHERE conversation_id = ? AND status = 'open'", (cid,)
            ).fetchone()
            if found:  # one open ticket per conversation: later reasons join it
                return int(found[0])
            cur = conn.execute(
                "INSERT INTO tickets (conversation_id, reason, created) VALUES (?, ?, ?)", (cid, reason, time.time())
            )
            conn.execute("UPDATE conversations SET escalated = 1 WHERE id = ?", (cid,))
            return int(cur.lastrowid or 0)

    def tickets(self, status: str | None = "open") -> list[dict[str, Any]]:
        query = "SELECT id, conversation_id, reason, status, created, closed, agent FROM tickets"
        args: tuple[Any, ...] = ()
        if status:
            query, args = query + " WHERE status = ?", (status,)
        with self._tx() as conn:
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        keys = ("id", "conversation_id", "reason", "status", "created", "closed", "agent")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def ticket(self, tid: int) -> dict[str, Any]:
        found = [t for t in self.tickets(None) if t["id"] == tid]
        if not found:
            raise ShipyardError("no such ticket", where=f"ticket {tid}")
        return found[0] | {"conversation": self.conversation(found[0]["conversation_id"])}

    def close_ticket(self, tid: int, agent: str) -> None:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE tickets SET status = 'closed', closed = ?, agent = ? WHERE id = ? AND status = 'open'",
                (time.time(), agent, tid),
            )
            if cur.rowcount == 0:
                raise ShipyardError("no open ticket with this id", where=f"ticket {tid}")

    # ------------------------------------------------------------------ feedback
    def add_feedback(
        self,
        turn_id: int,
        *,
        helpful: bool | None,
        correct_intent: str | None = None,
        correct_passage_id: int | None = None,
        source: str = "customer",
    ) -> dict[str, Any]:
        with self._tx() as conn:
            row = conn.execute("SELECT conversation_id, role FROM turns WHERE id = ?", (turn_id,)).fetchone()
            if row is None or row[1] != "assistant":
                raise ShipyardError("no assistant answer with this turn id", where=f"turn {turn_id}")
            conn.execute(
                "INSERT INTO feedback (turn_id, helpful, correct_intent, correct_passage_id, source, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    turn_id,
                    None if helpful is None else int(helpful),
                    correct_intent,
                    correct_passage_id,
                    source,
                    time.time(),
                ),
            )
            if helpful is False:
                conn.execute("UPDATE conversations SET unhelpful = unhelpful + 1 WHERE id = ?", (row[0],))
            unhelpful = conn.execute("SELECT unhelpful FROM conversations WHERE id = ?", (row[0],)).fetchone()[0]
        return {"conversation_id": row[0], "unhelpful": int(unhelpful)}

    def question(self, turn_id: int) -> tuple[str, str | None]:
        """(the customer's redacted words an assistant answer replied to, the intent it answered with)."""
        with self._tx() as conn:
            row = conn.execute(
                """SELECT q.text, a.intent FROM turns a JOIN turns q ON q.id = (SELECT MAX(id) FROM turns
                   WHERE conversation_id = a.conversation_id AND role = 'customer' AND id < a.id)
                   WHERE a.id = ? AND a.role = 'assistant'""",
                (turn_id,),
            ).fetchone()
        if row is None:
            raise ShipyardError("no assistant answer with this turn id", where=f"turn {turn_id}")
        return str(row[0]), row[1]

    def answered_passage(self, turn_id: int) -> int | None:
        """The passage an assistant answer showed (None: a tool's answer, a question back, a hand-over)."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT passage_id FROM turns WHERE id = ? AND role = 'assistant'", (turn_id,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def export_feedback(self, folder: Path) -> dict[str, int]:
        """``intents.csv`` (text, intent) and ``pairs.csv`` (query, passage_id): the customer's redacted words
        with the intent and answer that were confirmed helpful or given by an agent's correction."""
        import csv

        with self._tx() as conn:
            rows = conn.execute(
                """SELECT q.text, COALESCE(f.correct_intent, a.intent), COALESCE(f.correct_passage_id, a.passage_id)
                   FROM feedback f JOIN turns a ON a.id = f.turn_id
                   JOIN turns q ON q.id = (SELECT MAX(id) FROM turns WHERE conversation_id = a.conversation_id
                                           AND role = 'customer' AND id < a.id)
                   WHERE f.helpful = 1 OR f.correct_intent IS NOT NULL OR f.correct_passage_id IS NOT NULL"""
            ).fetchall()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        from shipyard.io import atomic_write_text

        def table(header: list[str], data: list[tuple[Any, ...]]) -> str:
            import io

            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(header)
            writer.writerows(data)
            return buf.getvalue()

        intents = [(t, i) for t, i, _ in rows if i]
        pairs = [(t, p) for t, _, p in rows if p is not None]
        atomic_write_text(folder / "intents.csv", table(["text", "intent"], intents), private=True)
        atomic_write_text(folder / "pairs.csv", table(["query", "passage_id"], pairs), private=True)
        return {"intents": len(intents), "pairs": len(pairs)}

    # ------------------------------------------------------------------ retention and erasure
    def purge(self, now: float | None = None) -> int:
        """Delete conversations idle past the retention (and what hangs off them); returns how many."""
        cutoff = (now or time.time()) - self.retention_s
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM conversations WHERE updated < ? AND id NOT IN "
                "(SELECT conversation_id FROM tickets WHERE status = 'open')",
                (cutoff,),
            )
            return cur.rowcount

    def forget(self, cid: str) -> bool:
        with self._tx() as conn:
            return conn.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount > 0


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
