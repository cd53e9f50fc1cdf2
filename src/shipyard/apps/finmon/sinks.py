"""Where alerts go: the log, Prometheus counters, and a webhook fed from a durable outbox.

The webhook never loses an alert: the alert and its outbox row are written in one transaction; the dispatcher
POSTs due rows, marks a row delivered on a 2xx answer, and otherwise schedules the next try with exponential
back-off (``backoff * 2**attempts``, capped). Each POST carries an ``Idempotency-Key`` (the alert id) so a
receiver can drop the rare repeat (a crash after the POST succeeded but before it was marked).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from shipyard.apps.finmon.config import Sinks, Webhook
from shipyard.apps.finmon.store import Store

log = logging.getLogger(__name__)


class Metrics:
    """The monitor's Prometheus counters, in their own registry (a process may run several monitors)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.documents = Counter("finmon_documents", "documents stored", ["source"], registry=self.registry)
        self.duplicates = Counter("finmon_duplicates", "near-duplicates (stored, not counted)", registry=self.registry)
        self.dead = Counter("finmon_dead_letters", "documents sent to the dead-letter table", registry=self.registry)
        self.alerts = Counter("finmon_alerts", "alerts raised", ["entity", "direction"], registry=self.registry)
        self.webhook_failures = Counter("finmon_webhook_failures", "failed webhook attempts", registry=self.registry)
        self.lag = Gauge("finmon_ingest_to_store_seconds", "latency of the last batch", registry=self.registry)


class WebhookDispatcher:
    SINK = "webhook"

    def __init__(self, settings: Webhook, store: Store, metrics: Metrics | None = None) -> None:
        self.settings, self.store, self.metrics = settings, store, metrics
        self.client = httpx.Client(timeout=settings.timeout_seconds)

    def dispatch(self, now: float | None = None) -> int:
        """Try every due outbox row once; returns how many were delivered."""
        now = time.time() if now is None else now
        delivered = 0
        for row_id, payload, attempts in self.store.outbox_due(self.SINK, now):
            alert_id = json.loads(payload)["id"]
            try:
                response = self.client.post(
                    self.settings.url,
                    content=payload,
                    headers={"content-type": "application/json", "idempotency-key": f"finmon-alert-{alert_id}"},
                )
                ok, error = response.is_success, f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
            if ok:
                self.store.outbox_result(row_id, delivered=True)
                delivered += 1
                continue
            if self.metrics:
                self.metrics.webhook_failures.inc()
            wait = min(self.settings.backoff_seconds * 2**attempts, self.settings.max_backoff_seconds)
            if attempts + 1 > self.settings.retries:  # kept in the outbox, retried at the slowest pace
                wait = self.settings.max_backoff_seconds
            log.warning("webhook delivery of alert %s failed (%s); next try in %.1fs", alert_id, error, wait)
            self.store.outbox_result(row_id, delivered=False, next_attempt_at=now + wait, error=error)
        return delivered

    def close(self) -> None:
        self.client.close()


class AlertSinks:
    """Fans an alert out to the configured sinks; the webhook goes through the outbox (see the module doc)."""

    def __init__(self, settings: Sinks, store: Store, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.webhook = WebhookDispatcher(settings.webhook, store, metrics) if settings.webhook else None

    @property
    def durable(self) -> list[str]:
        return [WebhookDispatcher.SINK] if self.webhook else []

    def emit(self, alert: dict[str, Any]) -> None:
        if self.settings.log:
            values = alert["values"]
            log.warning(
                "ALERT %s %s in %s bucket %s: volume %s (z %.1f), sentiment z %.1f, rules %s",
                alert["entity"], alert["direction"], alert["window"], alert["bucket"], values["volume"],
                values["volume_z"], values["sentiment_z"], ",".join(alert["rules"]),
            )  # fmt: skip
        if self.settings.prometheus:
            self.metrics.alerts.labels(alert["entity"], alert["direction"]).inc()

    def dispatch(self) -> int:
        return self.webhook.dispatch() if self.webhook else 0

    def close(self) -> None:
        if self.webhook:
            self.webhook.close()
