"""The monitor's store (``shipyard.apps.finmon.store.Store``) on PostgreSQL and DuckDB, for bench/finmon_store.py.

The methods measured are the store's own (``write_batch``, ``series``, ``entities``, ``documents_for``, ...): only
the connection differs. ``Translated`` wraps a psycopg or DuckDB connection and rewrites each SQLite statement the
store sends into the other dialect (placeholders, ``INSERT OR IGNORE`` / ``OR REPLACE`` as ``ON CONFLICT``, REAL as
DOUBLE PRECISION: PostgreSQL's and DuckDB's REAL is 4 bytes, too coarse for epoch seconds), so each backend runs
the same statements, in the same transactions, as the pipeline does on SQLite. ``bulk_load`` fills a history with
each backend's own bulk path (COPY, a DataFrame insert, executemany in one transaction): set-up, not measured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipyard.apps.finmon.config import window_seconds
from shipyard.apps.finmon.store import SCHEMA, Store

KINDS = ("sqlite", "postgresql", "postgresql-async", "duckdb")
TABLES = ("documents", "mentions", "aggregates", "alerts", "outbox", "dead_letters", "positions", "inbox",
          "corrections")  # fmt: skip
INCREMENT = re.compile(r"\b(\w+) = \1 \+")
INTEGER_SUM = re.compile(r"SUM\((n|n_scored|n_negative)\)")


def _schema(kind: str) -> list[str]:
    sql = SCHEMA.replace(" REAL", " DOUBLE PRECISION").replace(" INTEGER", " BIGINT")
    if kind == "duckdb":  # no AUTOINCREMENT: a sequence per table
        sql = re.sub(r"CREATE TABLE IF NOT EXISTS (\w+) \(\n?\s*(\w+) BIGINT PRIMARY KEY AUTOINCREMENT",
                     r"CREATE SEQUENCE IF NOT EXISTS \1_seq; CREATE TABLE IF NOT EXISTS \1 (\2 BIGINT PRIMARY KEY "
                     r"DEFAULT nextval('\1_seq')", sql)  # fmt: skip
    else:
        sql = sql.replace("BIGINT PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    return [s.strip() for s in sql.split(";") if s.strip()]


def translate(sql: str, kind: str) -> str:
    sql = sql.replace("BEGIN IMMEDIATE", "BEGIN TRANSACTION" if kind == "duckdb" else "BEGIN")
    sql = sql.replace(", rowid DESC", "")  # recent_texts' tie-break (PostgreSQL has no rowid)
    if kind == "duckdb":
        return sql  # DuckDB reads ?, INSERT OR IGNORE / OR REPLACE and unqualified ON CONFLICT columns as SQLite does
    if sql.startswith("INSERT OR IGNORE INTO"):
        sql = sql.replace("INSERT OR IGNORE INTO", "INSERT INTO", 1) + " ON CONFLICT DO NOTHING"
    if sql.startswith("INSERT OR REPLACE INTO positions"):
        sql = sql.replace("INSERT OR REPLACE INTO", "INSERT INTO", 1)
        sql += " ON CONFLICT (source, key) DO UPDATE SET value = excluded.value"
    if "INTO aggregates" in sql:
        sql = INCREMENT.sub(r"\1 = aggregates.\1 +", sql)  # PostgreSQL: the old row's column, named
    sql = INTEGER_SUM.sub(r"SUM(\1)::bigint", sql)  # PostgreSQL sums integers as numeric (Decimal in Python)
    return sql.replace("?", "%s")


class Rows(list):
    """Fetched rows, read like a sqlite3 cursor."""

    def fetchall(self) -> list[Any]:
        return list(self)

    def fetchone(self) -> Any:
        return self[0] if self else None


class Translated:
    """A DB-API-like connection that speaks the store's SQLite to PostgreSQL (psycopg 3) or DuckDB."""

    def __init__(self, kind: str, conn: Any) -> None:
        self.kind, self.conn = kind, conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.kind == "duckdb":  # a DuckDB result is the connection itself: not iterable, so rows are fetched here
            result = self.conn.execute(translate(sql, self.kind), list(params))
            return Rows(result.fetchall() if result.description else [])
        return self.conn.execute(translate(sql, self.kind), params)

    def executemany(self, sql: str, rows: list[Any]) -> None:
        if not rows:
            return
        if self.kind == "duckdb":
            self.conn.executemany(translate(sql, self.kind), [list(r) for r in rows])
        else:
            with self.conn.cursor() as cur:  # psycopg 3 sends the rows in pipeline mode: one round trip
                cur.executemany(translate(sql, self.kind), rows)

    def close(self) -> None:
        self.conn.close()


class TranslatedStore(Store):
    """The store's methods, on a translated connection."""

    def __init__(self, db: Translated, windows: list[str], create: bool = True) -> None:
        self.path = Path("-")
        self.windows = {w: window_seconds(w) for w in windows}
        self.db = db  # type: ignore[assignment]
        if create:
            for statement in _schema(db.kind):
                db.execute(statement)


def open_store(kind: str, target: str, windows: list[str], *, create: bool = False, read_only: bool = False) -> Store:
    """``target``: the SQLite/DuckDB file, or the PostgreSQL URL (the tables are reset when ``create``)."""
    if kind == "sqlite":
        return Store(target, windows)
    if kind == "duckdb":
        import duckdb

        return TranslatedStore(Translated(kind, duckdb.connect(target, read_only=read_only)), windows, create)
    import psycopg

    conn = psycopg.connect(target.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    if kind == "postgresql-async":  # commits do not wait for the WAL flush (SQLite's synchronous=NORMAL, in effect)
        conn.execute("SET synchronous_commit = off")
    if create:
        conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES))
    return TranslatedStore(Translated(kind, conn), windows, create)


def bulk_load(kind: str, store: Store, tables: dict[str, tuple[list[str], list[tuple]]]) -> None:
    """Fill tables (name -> columns, rows) through the backend's bulk path, then refresh its statistics."""
    if kind == "sqlite":
        with store.transaction() as db:
            for name, (cols, rows) in tables.items():
                db.executemany(f"INSERT INTO {name} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", rows)
        store.db.execute("ANALYZE")
        return
    conn = store.db.conn  # type: ignore[attr-defined]
    if kind == "duckdb":
        import pandas as pd

        for name, (cols, rows) in tables.items():
            frame = pd.DataFrame.from_records(rows, columns=cols)
            conn.register("bulk_frame", frame)
            conn.execute(f"INSERT INTO {name} ({','.join(cols)}) SELECT {','.join(cols)} FROM bulk_frame")
            conn.unregister("bulk_frame")
        conn.execute("CHECKPOINT")
        return
    for name, (cols, rows) in tables.items():
        with conn.cursor() as cur, cur.copy(f"COPY {name} ({','.join(cols)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    conn.execute("VACUUM ANALYZE")
