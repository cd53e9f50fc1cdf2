"""The monitor's SQLite store: documents keyed by id, per-entity window aggregates, alerts, the webhook outbox,
the dead-letter table, the HTTP inbox and every source's saved position.

Exactly-once in effect: a batch's documents, their aggregate increments and the sources' new positions are one
transaction, and a document whose id is already stored adds nothing; so a batch replayed after a crash (the
at-least-once sources deliver it again) changes nothing. WAL journal (readers never block the writer); the file
is created 0600 (it holds the texts).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipyard.apps.finmon.config import window_seconds
from shipyard.apps.finmon.processing import DeadLetter, Document

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  id TEXT PRIMARY KEY, ts REAL NOT NULL, received_at REAL NOT NULL, stored_at REAL NOT NULL, source TEXT,
  lang TEXT, text TEXT NOT NULL, score REAL, label TEXT, dup_of TEXT, entities TEXT NOT NULL, meta TEXT);
CREATE INDEX IF NOT EXISTS documents_ts ON documents(ts);
CREATE TABLE IF NOT EXISTS mentions (
  doc_id TEXT NOT NULL, entity TEXT NOT NULL, ts REAL NOT NULL, score REAL, PRIMARY KEY (doc_id, entity));
CREATE INDEX IF NOT EXISTS mentions_entity_ts ON mentions(entity, ts);
CREATE TABLE IF NOT EXISTS aggregates (
  entity TEXT NOT NULL, win TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, n_scored INTEGER NOT NULL,
  sum_score REAL NOT NULL, sum_sq REAL NOT NULL, n_negative INTEGER NOT NULL, PRIMARY KEY (entity, win, bucket));
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL, entity TEXT NOT NULL, win TEXT NOT NULL,
  bucket INTEGER NOT NULL, direction TEXT NOT NULL, created_at REAL NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL, sink TEXT NOT NULL, payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0, delivered_at REAL,
  last_error TEXT, UNIQUE (alert_id, sink));
CREATE TABLE IF NOT EXISTS dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT, position TEXT, reason TEXT NOT NULL, raw TEXT,
  created_at REAL NOT NULL, UNIQUE (source, position));
CREATE TABLE IF NOT EXISTS positions (source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (source, key));
CREATE TABLE IF NOT EXISTS inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL,
  received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS corrections (doc_id TEXT NOT NULL, label TEXT NOT NULL, text TEXT NOT NULL,
  corrected_at REAL NOT NULL, PRIMARY KEY (doc_id));
"""


def _secure(path: Path) -> None:
    """Create the database file (and its WAL companions) readable by the owner only."""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if not p.exists() and p == path:
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        if p.exists():
            os.chmod(p, 0o600)


class Store:
    def __init__(self, path: str | Path, windows: list[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _secure(self.path)
        self.windows = {w: window_seconds(w) for w in windows}
        self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
        self.db.executescript(SCHEMA)
        _secure(self.path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ------------------------------------------------------------------ writes
    def write_batch(
        self, docs: list[Document], dead: list[DeadLetter], positions: dict[tuple[str, str], str]
    ) -> list[Document]:
        """Store a batch in one transaction; returns the documents that were new (a replayed id adds nothing).

        A handful of statements per batch, not several per document: the ids already stored are looked up at once,
        the new rows go in with executemany, and the window increments are summed per (entity, window, bucket)
        first."""
        now = time.time()
        with self.transaction() as db:
            known = self._known_ids(db, [doc.id for doc in docs])
            new: list[Document] = []
            for doc in docs:
                if doc.id not in known:
                    known.add(doc.id)
                    new.append(doc)
            db.executemany(
                "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(d.id, d.ts, d.received_at, now, d.source, d.lang, d.normalized or d.text, d.score, d.label, d.dup_of,
                  json.dumps(d.entities), json.dumps(d.meta) if d.meta else "{}") for d in new],
            )  # fmt: skip
            self._count(db, [doc for doc in new if doc.dup_of is None])
            db.executemany(
                "INSERT OR IGNORE INTO dead_letters (source, position, reason, raw, created_at) VALUES (?,?,?,?,?)",
                [(letter.source, letter.position, letter.reason, letter.raw, now) for letter in dead],
            )
            db.executemany("INSERT OR REPLACE INTO positions VALUES (?,?,?)",
                           [(source, key, value) for (source, key), value in positions.items()])  # fmt: skip
        return new

    @staticmethod
    def _known_ids(db: sqlite3.Connection, ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(row[0] for row in db.execute(f"SELECT id FROM documents WHERE id IN ({marks})", chunk))
        return known

    def _count(self, db: sqlite3.Connection, docs: list[Document]) -> None:
        mentions = []
        sums: dict[tuple[str, str, int], list[float]] = {}  # (entity, window, bucket) -> n, scored, sum, sum sq, neg
        for doc in docs:
            for entity in doc.entities:
                score = doc.entity_scores.get(entity, doc.score)
                mentions.append((doc.id, entity, doc.ts, score))
                scored = score is not None
                value = float(score) if scored else 0.0
                negative = int(doc.label == "negative") if entity not in doc.entity_scores else int(value < -0.33)
                for window, seconds in self.windows.items():
                    acc = sums.setdefault((entity, window, int(doc.ts // seconds) * seconds), [0, 0, 0.0, 0.0, 0])
                    acc[0] += 1
                    acc[1] += int(scored)
                    acc[2] += value
                    acc[3] += value * value
                    acc[4] += negative
        db.executemany("INSERT OR IGNORE INTO mentions VALUES (?,?,?,?)", mentions)
        db.executemany(
            "INSERT INTO aggregates VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (entity, win, bucket) DO UPDATE "
            "SET n = n + excluded.n, n_scored = n_scored + excluded.n_scored,"
            " sum_score = sum_score + excluded.sum_score, sum_sq = sum_sq + excluded.sum_sq,"
            " n_negative = n_negative + excluded.n_negative",
            [(*key, *acc) for key, acc in sums.items()],
        )

    def save_positions(self, positions: dict[tuple[str, str], str]) -> None:
        with self.transaction() as db:
            for (source, key), value in positions.items():
                db.execute("INSERT OR REPLACE INTO positions VALUES (?,?,?)", (source, key, value))

    def positions(self, source: str) -> dict[str, str]:
        rows = self.db.execute("SELECT key, value FROM positions WHERE source = ?", (source,))
        return dict(rows.fetchall())

    def document(self, doc_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT text, label, score FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None else {"id": doc_id, "text": row[0], "label": row[1], "score": row[2]}

    def add_correction(self, doc_id: str, label: str, then: Callable[[], None] | None = None) -> str | None:
        """Store a stored document's correction; returns None, or the earlier label when it was corrected already
        (nothing written). ``then`` runs inside the transaction (the loop's write): if it raises, nothing is kept."""
        with self.transaction() as db:
            prior = db.execute("SELECT label FROM corrections WHERE doc_id = ?", (doc_id,)).fetchone()
            if prior is not None:
                return str(prior[0])
            db.execute(
                "INSERT INTO corrections SELECT id, ?, text, ? FROM documents WHERE id = ?",
                (label, time.time(), doc_id),
            )
            if then is not None:
                then()
        return None

    def corrections(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT doc_id, label FROM corrections").fetchall())

    # ------------------------------------------------------------------ inbox (HTTP ingest)
    def enqueue(self, records: Iterable[dict[str, Any]]) -> int:
        now = time.time()
        with self.transaction() as db:
            rows = [(json.dumps(r), now) for r in records]
            db.executemany("INSERT INTO inbox (payload, received_at) VALUES (?,?)", rows)
        return len(rows)

    def inbox_after(self, seq: int, limit: int) -> list[tuple[int, str, float]]:
        cur = self.db.execute(
            "SELECT seq, payload, received_at FROM inbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return cur.fetchall()

    # ------------------------------------------------------------------ reads
    def recent_texts(self, limit: int) -> list[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT id, text FROM documents WHERE dup_of IS NULL ORDER BY stored_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return list(reversed(rows.fetchall()))

    def entities(self, window: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT entity, SUM(n), SUM(sum_score), SUM(n_scored), SUM(n_negative), MAX(bucket) FROM aggregates "
            "WHERE win = ? GROUP BY entity ORDER BY entity",
            (window,),
        )
        return [
            {"entity": e, "volume": n, "mean_sentiment": (s / k if k else None), "share_negative": neg / n if n else 0,
             "last_bucket": last}
            for e, n, s, k, neg, last in rows.fetchall()
        ]  # fmt: skip

    def series(self, entity: str, window: str, since: float = 0.0, limit: int = 10_000) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT bucket, n, n_scored, sum_score, sum_sq, n_negative FROM aggregates "
            "WHERE entity = ? AND win = ? AND bucket >= ? ORDER BY bucket DESC LIMIT ?",
            (entity, window, since, limit),
        ).fetchall()
        return [
            {"bucket": b, "volume": n, "n_scored": k, "mean_sentiment": (s / k if k else None),
             "sum_score": s, "sum_sq": q, "share_negative": neg / n if n else 0.0}
            for b, n, k, s, q, neg in reversed(rows)
        ]  # fmt: skip

    def max_ts(self) -> float | None:
        row = self.db.execute("SELECT MAX(ts) FROM documents").fetchone()
        return row[0]

    def documents_for(self, entity: str, start: float, end: float, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT d.id, d.ts, d.text, m.score, d.label, d.source, c.label FROM mentions m "
            "JOIN documents d ON d.id = m.doc_id LEFT JOIN corrections c ON c.doc_id = d.id "
            "WHERE m.entity = ? AND m.ts >= ? AND m.ts < ? ORDER BY m.ts DESC LIMIT ?",
            (entity, start, end, limit),
        )
        keys = ("id", "ts", "text", "score", "label", "source", "corrected")
        return [dict(zip(keys, r, strict=True)) for r in rows.fetchall()]

    def alerts(self, after_id: int = 0, entity: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT id, payload FROM alerts WHERE id > ?" + (" AND entity = ?" if entity else "")
        args: tuple[Any, ...] = (after_id, entity) if entity else (after_id,)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [{"id": i, **json.loads(p)} for i, p in rows]

    def alert_between(self, entity: str, window: str, start: float, end: float) -> bool:
        """Whether an alert for ``entity`` exists with its bucket in [start, end)."""
        row = self.db.execute(
            "SELECT 1 FROM alerts WHERE entity = ? AND win = ? AND bucket >= ? AND bucket < ? LIMIT 1",
            (entity, window, start, end),
        ).fetchone()
        return row is not None

    def insert_alert(self, key: str, alert: dict[str, Any], sinks: list[str]) -> int | None:
        """Store an alert and queue it for each durable sink, in one transaction; None when ``key`` exists."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO alerts (key, entity, win, bucket, direction, created_at, payload) "
                "VALUES (?,?,?,?,?,?,?)",
                (key, alert["entity"], alert["window"], alert["bucket"], alert["direction"], time.time(),
                 json.dumps(alert)),
            )  # fmt: skip
            if cur.rowcount != 1:
                return None
            alert_id = int(cur.lastrowid or 0)
            payload = json.dumps({"id": alert_id, **alert})
            for sink in sinks:
                db.execute("INSERT INTO outbox (alert_id, sink, payload) VALUES (?,?,?)", (alert_id, sink, payload))
        return alert_id

    def outbox_due(self, sink: str, now: float, limit: int = 100) -> list[tuple[int, str, int]]:
        rows = self.db.execute(
            "SELECT id, payload, attempts FROM outbox WHERE sink = ? AND delivered_at IS NULL AND next_attempt_at <= ? "
            "ORDER BY id LIMIT ?",
            (sink, now, limit),
        )
        return rows.fetchall()

    def outbox_result(self, row_id: int, *, delivered: bool, next_attempt_at: float = 0.0, error: str = "") -> None:
        with self.transaction() as db:
            if delivered:
                sql = "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?"
                db.execute(sql, (time.time(), row_id))
            else:
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
                    (next_attempt_at, error[:500], row_id),
                )

    def count(self, table: str) -> int:
        assert table in {"documents", "mentions", "alerts", "outbox", "dead_letters", "inbox", "corrections"}
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def dead_letters(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT source, position, reason, raw FROM dead_letters ORDER BY id").fetchall()
        return [dict(zip(("source", "position", "reason", "raw"), r, strict=True)) for r in rows]
