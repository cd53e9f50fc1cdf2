"""The monitor loop: poll the sources in micro-batches, process, score, store (with the sources' positions, in one
transaction), acknowledge, evaluate alerts, deliver them; progress in the log; a graceful stop on SIGINT/SIGTERM
(the batch in hand is finished and stored first)."""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from shipyard.apps.finmon.alerts import AlertEngine
from shipyard.apps.finmon.config import FinmonConfig
from shipyard.apps.finmon.processing import (
    DeadLetter,
    Document,
    EntityLinker,
    Envelope,
    NearDuplicates,
    Rejected,
    detect_language,
    normalize,
    parse_envelope,
)
from shipyard.apps.finmon.scoring import ArtifactModel, Scorer, SentenceModel
from shipyard.apps.finmon.sinks import AlertSinks, Metrics
from shipyard.apps.finmon.sources import Source, build_sources
from shipyard.apps.finmon.store import Store

log = logging.getLogger(__name__)


@dataclass
class Stats:
    batches: int = 0
    documents: int = 0
    duplicates: int = 0
    dead: int = 0
    alerts: int = 0
    latencies: list[float] = field(default_factory=list)  # ingest -> stored score, seconds, per document
    seconds: float = 0.0


class Monitor:
    def __init__(self, config: FinmonConfig, *, model: SentenceModel | None = None, store: Store | None = None) -> None:
        self.config = config
        self.store = store or Store(config.resolve(config.store), config.windows)
        self.linker = EntityLinker(config.watchlist)
        self.scorer = Scorer(model or ArtifactModel(config.model, config.resolve(".")), self.linker,
                             config.model.max_sentences)  # fmt: skip
        p = config.processing
        self.dedup = NearDuplicates(p.dedup_threshold, p.dedup_num_perm, p.dedup_memory)
        recent = self.store.recent_texts(p.dedup_memory)  # a restart remembers what it had seen
        self.dedup.check_batch([doc_id for doc_id, _ in recent], [normalize(text) for _, text in recent])
        self.metrics = Metrics()
        self.sinks = AlertSinks(config.sinks, self.store, self.metrics)
        self.alerts = AlertEngine(config.alerts, self.store, self.sinks.durable)
        self.sources: list[Source] = build_sources(config, self.store)
        self.stats = Stats()
        self.stopping = False

    # ------------------------------------------------------------------ one batch
    def prepare(self, envelopes: list[Envelope]) -> tuple[list[Document], list[DeadLetter]]:
        docs, dead = [], []
        seen: set[str] = set()
        for env in envelopes:
            try:
                doc = parse_envelope(env, self.config.processing)
            except Rejected as exc:
                raw = env.payload if isinstance(env.payload, bytes) else repr(env.payload).encode()
                at = env.position
                position = ":".join(str(p) for p in at) if isinstance(at, tuple) else str(at)
                dead.append(DeadLetter(env.source, position, str(exc), raw[:500].decode("utf-8", "replace")))
                continue
            if doc.id in seen:
                continue
            seen.add(doc.id)
            doc.normalized = normalize(doc.text)
            doc.lang = detect_language(doc.normalized)
            doc.entities = self.linker.link(doc.normalized)
            docs.append(doc)
        return docs, dead

    def process(self, source: Source, envelopes: list[Envelope]) -> list[Document]:
        docs, dead = self.prepare(envelopes)
        to_score = []
        duplicates = self.dedup.check_batch([d.id for d in docs], [d.normalized for d in docs])
        for doc, dup_of in zip(docs, duplicates, strict=True):
            doc.dup_of = None if dup_of == doc.id else dup_of
            if doc.dup_of is None and doc.entities and doc.lang in self.config.processing.languages:
                to_score.append(doc)
        self.scorer.score(to_score)
        new = self.store.write_batch(docs, dead, source.positions(envelopes))
        source.acknowledge(envelopes)
        now = time.time()
        self.stats.latencies.extend(now - d.received_at for d in new)
        self.stats.batches += 1
        self.stats.documents += len(new)
        self.stats.duplicates += sum(d.dup_of is not None for d in new)
        self.stats.dead += len(dead)
        if new:
            self.metrics.lag.set(now - min(d.received_at for d in new))
        self.metrics.documents.labels(source.name).inc(len(new))
        self.metrics.duplicates.inc(sum(d.dup_of is not None for d in new))
        self.metrics.dead.inc(len(dead))
        for alert in self.alerts.evaluate():
            self.stats.alerts += 1
            self.sinks.emit(alert)
        self.sinks.dispatch()
        return new

    # ------------------------------------------------------------------ the loop
    def run(self, *, until_idle: bool = False, max_seconds: float | None = None, idle_polls: int = 2) -> Stats:
        """Run until stopped (SIGINT/SIGTERM), or until every source is idle ``idle_polls`` times in a row
        (``until_idle``: a replay), or ``max_seconds``."""
        self._install_signals()
        self.stats = Stats()
        started = time.monotonic()
        last_progress, idle = started, 0
        batch = self.config.batching
        try:
            while not self.stopping:
                got = 0
                for source in self.sources:
                    envelopes = source.poll(batch.size, batch.max_wait_seconds if not got else 0.0)
                    if envelopes:
                        got += len(envelopes)
                        self.process(source, envelopes)
                if got == 0:
                    self.sinks.dispatch()  # retries are due even when nothing new arrives
                idle = idle + 1 if got == 0 else 0
                if until_idle and idle >= idle_polls:
                    break
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
                if time.monotonic() - last_progress >= batch.progress_seconds:
                    last_progress = time.monotonic()
                    self._progress(last_progress - started)
        finally:
            self.stats.seconds = time.monotonic() - started
            self._progress(self.stats.seconds)
        return self.stats

    def _progress(self, elapsed: float) -> None:
        s = self.stats
        rate = s.documents / elapsed if elapsed > 0 else 0.0
        log.info("%d documents (%.0f/s), %d near-duplicates, %d dead letters, %d alerts",
                 s.documents, rate, s.duplicates, s.dead, s.alerts)  # fmt: skip

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %d: finishing the current batch, then stopping", signum)
            self.stopping = True

        try:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        except ValueError:  # not the main thread (a test, an embedding server): stop() is the way out
            pass

    def stop(self) -> None:
        self.stopping = True

    def close(self) -> None:
        for source in self.sources:
            source.close()
        self.sinks.close()
        self.store.close()
