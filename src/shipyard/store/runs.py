"""The run index: one row per training run in ``<runs_root>/shipyard.db``.

The run folder stays the source of truth for artefacts; this table makes runs quick to list, find by id prefix
(like git), compare and flag (e.g. ``needs_retraining``). The ``rich`` tables the CLI prints are in
store/run_tables.py.
"""

from __future__ import annotations

import difflib
import logging
import socket
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from shipyard.errors import ShipyardError
from shipyard.store.db import StoreTable, dumps, loads, parse_time, utc_now
from shipyard.store.liveness import process_alive, this_process

logger = logging.getLogger(__name__)

RunStatus = Literal["running", "finished", "failed", "killed"]
FinalStatus = Literal["finished", "failed", "killed"]
STATUSES: tuple[str, ...] = get_args(RunStatus)
FINAL_STATUSES: tuple[str, ...] = get_args(FinalStatus)
METRIC_SPLITS = ("validation", "test")
# the metric shown in the runs table, first one present wins
HEADLINE_METRICS = ("accuracy", "f1_macro", "f1", "auc", "roc_auc", "r2", "rmse", "mae", "loss")


@dataclass(frozen=True)
class RunRecord:
    """One row of the run index."""

    run_id: str
    run_dir: Path
    name: str
    task: str
    model_type: str
    status: str
    config: dict[str, Any]
    config_hash: str
    seed: int
    started_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float | None = None
    finished_at: datetime | None = None


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        run_dir=Path(row["run_dir"]),
        name=row["name"],
        task=row["task"],
        model_type=row["model_type"],
        status=row["status"],
        config=loads(row["config"]),
        config_hash=row["config_hash"],
        seed=int(row["seed"]),
        started_at=parse_time(row["started_at"]),  # type: ignore[arg-type]
        metrics=loads(row["metrics"]),
        flags=loads(row["flags"]),
        error=row["error"],
        duration_s=row["duration_s"],
        finished_at=parse_time(row["finished_at"]),
    )


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}``. Lists stay values."""
    if isinstance(value, dict) and (value or not prefix):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RunStore(StoreTable):
    """The run index in a SQLite file. Safe to share between threads."""

    # ---- writing -------------------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        run_dir: Path,
        *,
        name: str,
        task: str,
        model_type: str,
        config: dict[str, Any],
        config_hash: str,
        seed: int,
    ) -> None:
        """Add a run with status ``running``."""
        if not isinstance(run_id, str) or not run_id.strip():
            raise ShipyardError(f"run id must be a non-empty string, got {run_id!r}", where="run_id")
        if not isinstance(config, dict):
            raise ShipyardError(f"config must be a dict, got {type(config).__name__}", where="config")
        config_text = dumps(config, field="config")
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise ShipyardError(f"run {run_id!r} already exists", where="run_id")
            conn.execute(
                "INSERT INTO runs (run_id, run_dir, name, task, model_type, status, config, config_hash, seed,"
                " started_at, pid, host, pid_started) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    str(run_dir),
                    name,
                    task,
                    model_type,
                    config_text,
                    config_hash,
                    int(seed),
                    utc_now(),
                    *this_process(),
                ),
            )
        logger.info("run %s started (%s, %s)", run_id, task, model_type)

    def reopen_run(self, run_id: str) -> None:
        """A resumed run is ``running`` again, owned by this process."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = 'running', error = NULL, finished_at = NULL, pid = ?, host = ?,"
                " pid_started = ? WHERE run_id = ?",
                (*this_process(), run_id),
            )
            if cursor.rowcount == 0:
                raise ShipyardError(f"no run {run_id!r} to resume", where="run_id")
        logger.info("run %s resumed", run_id)

    def reap_dead_runs(self) -> list[str]:
        """Mark ``killed`` every run still ``running`` whose process on this host is gone; returns their ids.

        A run started on another host is left alone (its process cannot be checked from here).
        """
        host = socket.gethostname()
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT run_id, pid, pid_started FROM runs WHERE status = 'running' AND host = ?", (host,)
            ).fetchall()
        dead = [r for r in rows if r["pid"] is not None and not process_alive(int(r["pid"]), r["pid_started"])]
        reaped: list[str] = []
        for row in dead:
            message = f"the process (pid {row['pid']} on {host}) ended without recording how the run finished"
            with self.db.transaction() as conn:
                cursor = conn.execute(
                    "UPDATE runs SET status = 'killed', error = ?, finished_at = ? WHERE run_id = ? AND"
                    " status = 'running' AND pid = ?",
                    (message, utc_now(), row["run_id"], row["pid"]),
                )
            if cursor.rowcount:
                reaped.append(row["run_id"])
                logger.warning("run %s: %s; marked killed", row["run_id"], message)
        return reaped

    def _reap_quietly(self) -> None:
        try:
            self.reap_dead_runs()
        except ShipyardError as exc:  # a read-only store still lists runs
            logger.debug("could not check for dead runs: %s", exc)

    def finish_run(
        self,
        run_id: str,
        *,
        status: FinalStatus,
        metrics: dict[str, Any],
        duration_s: float,
        error: str | None = None,
    ) -> None:
        """Record how a run ended. ``metrics`` is ``{"validation": {...}, "test": {...}}`` (may be partial)."""
        if status not in FINAL_STATUSES:
            raise ShipyardError(
                f"unknown final status {status!r}", where="status", hint=f"one of {', '.join(FINAL_STATUSES)}"
            )
        metrics_text = dumps(metrics or {}, field="metrics")
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, metrics = ?, duration_s = ?, error = ?, finished_at = ? WHERE run_id = ?",
                (status, metrics_text, float(duration_s), error, utc_now(), run_id),
            )
            if cursor.rowcount == 0:
                raise ShipyardError(f"no run {run_id!r} to finish", where="run_id", hint="call start_run first")
        logger.info("run %s %s after %.1f s", run_id, status, duration_s)

    def replace_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        """Overwrite a run's recorded metrics (after an erasure request recomputed them on the remaining rows).

        ``secure_delete`` zeroes the freed pages and the WAL is checkpointed, so the old figures do not linger in
        the database file."""
        metrics_text = dumps(metrics or {}, field="metrics")
        with self.db.transaction() as conn:
            conn.execute("PRAGMA secure_delete = ON")
            row = self._resolve(conn, run_id)
            conn.execute("UPDATE runs SET metrics = ? WHERE run_id = ?", (metrics_text, row["run_id"]))
        with self.db.connect() as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        logger.info("run %s: metrics replaced", run_id)

    def mark(self, run_id: str, key: str, value: Any) -> RunRecord:
        """Set a flag on a run (e.g. ``needs_retraining``); ``value=None`` removes it. Accepts an id prefix."""
        if not isinstance(key, str) or not key.strip():
            raise ShipyardError(f"flag name must be a non-empty string, got {key!r}", where="key")
        with self.db.transaction() as conn:
            row = self._resolve(conn, run_id)
            flags = loads(row["flags"])
            if value is None:
                flags.pop(key, None)
            else:
                flags[key] = value
            conn.execute("UPDATE runs SET flags = ? WHERE run_id = ?", (dumps(flags, field="flags"), row["run_id"]))
            updated = conn.execute("SELECT * FROM runs WHERE run_id = ?", (row["run_id"],)).fetchone()
        logger.info("run %s: flag %s = %r", row["run_id"], key, value)
        return _record(updated)

    def delete(self, run_id: str) -> RunRecord:
        """Remove a run from the index (the run folder is left alone). Accepts a unique id prefix."""
        with self.db.transaction() as conn:
            row = self._resolve(conn, run_id)
            conn.execute("DELETE FROM runs WHERE run_id = ?", (row["run_id"],))
        logger.info("run %s removed from the index", row["run_id"])
        return _record(row)

    # ---- reading -------------------------------------------------------------------------------------------

    def get(self, run_id_or_prefix: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with it."""
        self._reap_quietly()
        with self.db.connect() as conn:
            return _record(self._resolve(conn, run_id_or_prefix))

    def list_runs(self, limit: int | None = 50, status: str | None = None) -> list[RunRecord]:
        """Runs newest first; ``status`` filters, ``limit=None`` returns all."""
        if status is not None and status not in STATUSES:
            raise ShipyardError(f"unknown status {status!r}", where="status", hint=f"one of {', '.join(STATUSES)}")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ShipyardError(f"limit must be a non-negative integer, got {limit!r}", where="limit")
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        self._reap_quietly()
        with self.db.connect() as conn:
            return [_record(row) for row in conn.execute(sql, params).fetchall()]

    def compare(self, a: str | RunRecord, b: str | RunRecord) -> dict[str, Any]:
        """Differences between two runs (ids, prefixes or records).

        Returns ``{"a": id_a, "b": id_b, "config": {dotted_key: {"a": va, "b": vb}},
        "metrics": {"validation": {name: {"a": va, "b": vb, "delta": vb - va | None}}, "test": {...}}}``.
        ``config`` holds only keys whose values differ (a key missing on one side shows as None there);
        ``metrics`` holds every scalar metric of either run (nested ones flattened), ``delta`` is None unless
        both are numbers.
        """
        ra = a if isinstance(a, RunRecord) else self.get(a)
        rb = b if isinstance(b, RunRecord) else self.get(b)
        fa, fb = flatten(ra.config), flatten(rb.config)
        config_diff = {
            key: {"a": fa.get(key), "b": fb.get(key)}
            for key in sorted(set(fa) | set(fb))
            if key not in fa or key not in fb or fa[key] != fb[key]
        }
        metric_diff: dict[str, dict[str, dict[str, Any]]] = {}
        for split in METRIC_SPLITS:
            ma = {k: v for k, v in flatten(ra.metrics.get(split) or {}).items() if not isinstance(v, list)}
            mb = {k: v for k, v in flatten(rb.metrics.get(split) or {}).items() if not isinstance(v, list)}
            rows: dict[str, dict[str, Any]] = {}
            for key in sorted(set(ma) | set(mb)):
                va, vb = ma.get(key), mb.get(key)
                delta = vb - va if is_number(va) and is_number(vb) else None
                rows[key] = {"a": va, "b": vb, "delta": delta}
            metric_diff[split] = rows
        return {"a": ra.run_id, "b": rb.run_id, "config": config_diff, "metrics": metric_diff}

    def _resolve(self, conn: sqlite3.Connection, run_id_or_prefix: str) -> sqlite3.Row:
        query = run_id_or_prefix
        if not isinstance(query, str) or not query.strip():
            raise ShipyardError(f"give a run id or id prefix, got {query!r}", where="run id")
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (query,)).fetchone()
        if row is not None:
            return row
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = conn.execute(
            "SELECT * FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY started_at DESC", (escaped + "%",)
        ).fetchall()
        # LIKE is case-insensitive for ASCII; keep prefix matching exact like git
        rows = [r for r in rows if r["run_id"].startswith(query)]
        if len(rows) == 1:
            return rows[0]
        if rows:
            ids = [r["run_id"] for r in rows]
            shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            raise ShipyardError(
                f"run id prefix {query!r} is ambiguous: {len(ids)} runs match",
                where="run id",
                hint=f"matches {shown}; give more characters",
            )
        all_ids = [r[0] for r in conn.execute("SELECT run_id FROM runs").fetchall()]
        close = difflib.get_close_matches(query, all_ids, n=5, cutoff=0.5)
        if not close:
            close = [i for i in all_ids if i.lower().startswith(query.lower()[:3])][:5]
        if close:
            hint = f"did you mean {', '.join(close)}?"
        elif all_ids:
            recent = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 5")]
            hint = f"recent runs: {', '.join(recent)}"
        else:
            hint = "no runs are recorded yet"
        raise ShipyardError(f"no run matches {query!r}", where="run id", hint=hint)
