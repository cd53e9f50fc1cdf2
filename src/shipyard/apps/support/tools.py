"""Tools the assistant may call, behind one small interface, and the working example: order status from an
`orders` table in SQLite.

A tool runs in a worker thread with a deadline; an exception or a timeout becomes a `ToolFailed`, which the
assistant turns into an escalation with a message (never a hang, never a 5xx).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from shipyard.errors import ShipyardError
from shipyard.io import PRIVATE_MODE

log = logging.getLogger(__name__)
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="support-tool")


class ToolFailed(Exception):
    """A tool raised or ran past its deadline; ``reason`` is safe to show."""

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(f"{tool}: {reason}")
        self.tool = tool
        self.reason = reason


class Tool(Protocol):
    name: str
    timeout_s: float

    def run(self, slots: dict[str, str]) -> dict[str, Any]: ...


def call_tool(tool: Tool, slots: dict[str, str]) -> dict[str, Any]:
    """``tool.run(slots)`` with its deadline; ToolFailed on any error or timeout."""
    future = _POOL.submit(tool.run, slots)
    try:
        return future.result(timeout=tool.timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        log.warning("tool %s timed out after %.1fs", tool.name, tool.timeout_s)
        raise ToolFailed(tool.name, f"no answer within {tool.timeout_s:g} s") from None
    except Exception as exc:
        log.warning("tool %s failed: %s: %s", tool.name, type(exc).__name__, exc)
        raise ToolFailed(tool.name, "the order system is not answering") from exc


ORDERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    status   TEXT NOT NULL,
    eta      TEXT,
    email    TEXT,
    product  TEXT
)
"""


class OrderStatusTool:
    """Looks an order number up in ``orders``; ``{"found": False}`` when unknown."""

    name = "order_status"

    def __init__(self, db: Path, timeout_s: float = 2.0) -> None:
        self.db = Path(db)
        self.timeout_s = timeout_s

    def run(self, slots: dict[str, str]) -> dict[str, Any]:
        order_id = slots.get("order_id")
        if not order_id:
            return {"found": False, "missing": "order_id"}
        if not self.db.is_file():
            raise ShipyardError("the orders database does not exist", where=str(self.db))
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=self.timeout_s)
        try:
            row = conn.execute(
                "SELECT order_id, status, eta, product FROM orders WHERE order_id = ?", (order_id,)
            ).fetchone()
        finally:
            conn.close()
        if row is None:
            return {"found": False, "order_id": order_id}
        return {"found": True, "order_id": row[0], "status": row[1], "eta": row[2] or "", "product": row[3] or ""}


def write_orders(db: Path, rows: list[dict[str, str]]) -> int:
    """Create (0600: it holds customers' e-mail addresses) or extend the orders table."""
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        os.close(os.open(db, os.O_CREAT | os.O_WRONLY, PRIVATE_MODE))
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(ORDERS_SCHEMA)
            conn.executemany(
                "INSERT OR REPLACE INTO orders (order_id, status, eta, email, product) VALUES (?, ?, ?, ?, ?)",
                [(r["order_id"], r["status"], r.get("eta"), r.get("email"), r.get("product")) for r in rows],
            )
    finally:
        conn.close()
    return len(rows)


def demo_orders(n: int = 500, seed: int = 0) -> list[dict[str, str]]:
    """Made-up orders for the demo and the benchmark (seeded; numbers in Bitext's 8-15 digit style)."""
    import random

    rng = random.Random(seed)
    statuses = [
        ("processing", "in 3-5 days"),
        ("shipped", "tomorrow"),
        ("out for delivery", "today"),
        ("delivered", "already delivered"),
        ("delayed", "in 7-10 days"),
    ]
    products = ["wireless headphones", "coffee maker", "running shoes", "desk lamp", "backpack"]
    out = []
    for i in range(n):
        status, eta = statuses[rng.randrange(len(statuses))]
        out.append(
            {
                "order_id": str(10_000_000 + rng.randrange(89_999_999)) + str(i),
                "status": status,
                "eta": eta,
                "email": f"customer{i}@example.com",
                "product": products[rng.randrange(len(products))],
            }
        )
    return out
