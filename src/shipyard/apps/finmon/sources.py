"""Where documents come from, behind one interface, each at-least-once with a saved position.

A source's ``poll`` returns envelopes; the runner stores the batch together with ``positions(envelopes)`` in one
transaction and only then calls ``acknowledge``. A crash between the two replays the batch, which the store
ignores (documents are keyed by id). Adding a Kafka source is the same shape: ``poll`` wraps ``consumer.poll``,
``positions`` returns the partition offsets (saved in the same transaction, so ``enable.auto.commit`` stays off
and the consumer seeks to the stored offsets on start), ``acknowledge`` commits them to Kafka for monitoring.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from shipyard.apps.finmon.config import FinmonConfig, FolderSource, HttpSource, RedisSource
from shipyard.apps.finmon.processing import Envelope
from shipyard.apps.finmon.store import Store
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)
MAX_LINE_BYTES = 8 * 1024 * 1024  # longer lines are cut and rejected (the text limit is far below)


class Source(ABC):
    name: str

    @abstractmethod
    def poll(self, max_items: int, wait_seconds: float) -> list[Envelope]:
        """Up to ``max_items`` envelopes, waiting at most ``wait_seconds`` for the first."""

    def positions(self, envelopes: list[Envelope]) -> dict[tuple[str, str], str]:
        """The positions to save with the batch that holds ``envelopes``."""
        return {}

    def acknowledge(self, envelopes: list[Envelope]) -> None:
        """Called once the batch is stored."""
        return None

    def close(self) -> None:
        """Release connections."""
        return None


class FolderFiles(Source):
    """JSONL and CSV files in a folder: new files and lines appended to known files are picked up. The saved
    position is each file's byte offset after its last complete line (a half-written last line waits)."""

    def __init__(self, settings: FolderSource, folder: Path, store: Store) -> None:
        self.name, self.folder, self.patterns = settings.name, folder, settings.patterns
        self.offsets = {k: int(v) for k, v in store.positions(self.name).items()}
        self.headers: dict[str, list[str]] = {}

    def _files(self) -> list[Path]:
        found = {p for pattern in self.patterns for p in self.folder.glob(pattern) if p.is_file()}
        return sorted(found)

    def _header(self, path: Path) -> list[str]:
        if path.name not in self.headers:
            with open(path, "rb") as fh:
                first = fh.readline().decode("utf-8", errors="replace")
            self.headers[path.name] = next(csv.reader([first]), [])
        return self.headers[path.name]

    def poll(self, max_items: int, wait_seconds: float) -> list[Envelope]:
        deadline = time.monotonic() + wait_seconds
        while True:
            out = self._read(max_items)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(0.05, wait_seconds))

    def _read(self, max_items: int) -> list[Envelope]:
        out: list[Envelope] = []
        for path in self._files():
            offset = self.offsets.get(path.name, 0)
            if path.stat().st_size <= offset:
                continue
            is_csv = path.suffix.lower() == ".csv"
            with open(path, "rb") as fh:
                fh.seek(offset)
                if is_csv and offset == 0:
                    offset += len(fh.readline())
                now = time.time()
                while len(out) < max_items:
                    line = fh.readline(MAX_LINE_BYTES)
                    if not line.endswith(b"\n"):
                        break  # end of file or a line still being written: wait for its newline
                    start, offset = offset, offset + len(line)
                    if not line.strip():
                        continue
                    out.append(Envelope(self.name, (path.name, start, offset), self._payload(path, line), now))
            self.offsets[path.name] = offset
            if len(out) >= max_items:
                break
        return out

    def _payload(self, path: Path, line: bytes) -> bytes | dict[str, Any]:
        if path.suffix.lower() != ".csv":
            return line.rstrip(b"\r\n")
        try:
            row = next(csv.reader(io.StringIO(line.decode("utf-8"))), [])
        except UnicodeDecodeError:
            return line  # rejected by the parser with the reason
        return dict(zip(self._header(path), row, strict=False))

    def positions(self, envelopes: list[Envelope]) -> dict[tuple[str, str], str]:
        ends: dict[str, int] = {}
        for env in envelopes:
            name, _start, end = env.position
            ends[name] = max(end, ends.get(name, 0))
        return {(self.name, name): str(end) for name, end in ends.items()}


class HttpInbox(Source):
    """Documents POSTed to the API: the endpoint writes them to the store's inbox table before answering 202,
    so an accepted document survives any crash; the position is the last inbox sequence number processed."""

    def __init__(self, settings: HttpSource, store: Store) -> None:
        self.name, self.store = settings.name, store
        self.seq = int(store.positions(self.name).get("seq", 0))

    def poll(self, max_items: int, wait_seconds: float) -> list[Envelope]:
        deadline = time.monotonic() + wait_seconds
        while True:
            rows = self.store.inbox_after(self.seq, max_items)
            if rows or time.monotonic() >= deadline:
                break
            time.sleep(min(0.05, wait_seconds))
        if rows:
            self.seq = rows[-1][0]
        return [Envelope(self.name, seq, payload.encode(), received) for seq, payload, received in rows]

    def positions(self, envelopes: list[Envelope]) -> dict[tuple[str, str], str]:
        return {(self.name, "seq"): str(max(e.position for e in envelopes))} if envelopes else {}


class RedisStream(Source):
    """A Redis Stream read through a consumer group: an entry stays pending until acknowledged after the batch
    is stored, and on start this consumer first re-reads its own pending entries (a crash replays them)."""

    def __init__(self, settings: RedisSource) -> None:
        import redis  # optional heavy dependency: only a Redis source needs the client

        self.name, self.settings = settings.name, settings
        self.client = redis.Redis.from_url(settings.url)
        try:
            self.client.xgroup_create(settings.stream, settings.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ShipyardError(f"cannot create the consumer group: {exc}", where=settings.url) from None
        except redis.ConnectionError as exc:
            raise ShipyardError(f"cannot reach Redis: {exc}", where=settings.url) from None
        self.backlog = True  # first our own pending entries (id 0), then new ones (>)

    def poll(self, max_items: int, wait_seconds: float) -> list[Envelope]:
        s = self.settings
        if self.backlog:
            reply = self.client.xreadgroup(s.group, s.consumer, {s.stream: "0"}, count=max_items)
            entries = reply[0][1] if reply else []
            if entries:
                return [self._envelope(i, f) for i, f in entries]
            self.backlog = False
        block = max(1, int(min(wait_seconds * 1000, s.block_ms))) if wait_seconds > 0 else None
        reply = self.client.xreadgroup(s.group, s.consumer, {s.stream: ">"}, count=max_items, block=block)
        return [self._envelope(i, f) for i, f in (reply[0][1] if reply else [])]

    def _envelope(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Envelope:
        received = int(entry_id.split(b"-")[0]) / 1000.0  # when XADD stored it: the ingest time
        if b"doc" in fields:
            payload: bytes | dict[str, Any] = fields[b"doc"]
        else:
            try:
                payload = {k.decode(): v.decode() for k, v in fields.items()}
            except UnicodeDecodeError:
                payload = b"\xff" + next(iter(fields.values()), b"")  # rejected by the parser as wrong encoding
        return Envelope(self.name, entry_id.decode(), payload, received)

    def positions(self, envelopes: list[Envelope]) -> dict[tuple[str, str], str]:
        return {(self.name, "last_id"): envelopes[-1].position} if envelopes else {}

    def acknowledge(self, envelopes: list[Envelope]) -> None:
        if envelopes:
            self.client.xack(self.settings.stream, self.settings.group, *[e.position for e in envelopes])

    def close(self) -> None:
        self.client.close()


def publish(client: Any, stream: str, records: list[dict[str, Any]]) -> None:
    """Append documents to a Redis stream (one ``doc`` field of JSON each), pipelined."""
    pipe = client.pipeline(transaction=False)
    for record in records:
        pipe.xadd(stream, {"doc": json.dumps(record)})
    pipe.execute()


def build_sources(config: FinmonConfig, store: Store) -> list[Source]:
    out: list[Source] = []
    for settings in config.sources:
        if isinstance(settings, FolderSource):
            folder = config.resolve(settings.path)
            folder.mkdir(parents=True, exist_ok=True)
            out.append(FolderFiles(settings, folder, store))
        elif isinstance(settings, HttpSource):
            out.append(HttpInbox(settings, store))
        else:
            out.append(RedisStream(settings))
    return out
