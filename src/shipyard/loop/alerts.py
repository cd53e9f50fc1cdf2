"""Where drift alerts go: the log (always), Prometheus gauges and a counter, and an optional webhook.

The server passes its own ``CollectorRegistry`` so the gauges appear on its ``/metrics``; the CLI uses a private
one. A webhook that fails (refused, timeout, non-2xx) is logged and counted, never raised: an alert must not take
the check, or the server, down.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

logger = logging.getLogger(__name__)


class AlertSink:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, webhook_url: str | None = None, timeout_s: float = 5.0
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.webhook_url = str(webhook_url) if webhook_url else None
        self.timeout_s = timeout_s
        self.drift_score = Gauge(
            "shipyard_drift_score",
            "Drift statistic of the last check (PSI for tabular features and predictions, MMD² for text)",
            ["model", "feature", "test"],
            registry=self.registry,
        )
        self.drift_p = Gauge(
            "shipyard_drift_p_value",
            "p-value of the last drift test",
            ["model", "feature", "test"],
            registry=self.registry,
        )
        self.drifted = Gauge(
            "shipyard_drift_detected", "1 when the last check found drift, else 0", ["model"], registry=self.registry
        )
        self.feedback_accuracy = Gauge(
            "shipyard_feedback_accuracy", "Accuracy on the feedback of the window", ["model"], registry=self.registry
        )
        self.alerts = Counter("shipyard_alerts", "Alerts raised", ["model", "kind"], registry=self.registry)
        self.webhook_failures = Counter(
            "shipyard_alert_webhook_failures", "Alert webhooks that failed", ["model"], registry=self.registry
        )

    def observe(self, report: Any) -> None:
        """Publish one check's numbers and raise its alerts."""
        model = report.model
        for result in [*report.features, *([report.prediction] if report.prediction else [])]:
            score = result.psi if result.psi is not None else result.statistic
            self.drift_score.labels(model, result.name, result.test).set(score)
            self.drift_p.labels(model, result.name, result.test).set(result.p_value)
        self.drifted.labels(model).set(1.0 if report.status == "drift" else 0.0)
        if report.feedback.get("accuracy") is not None:
            self.feedback_accuracy.labels(model).set(report.feedback["accuracy"])
        for alert in report.alerts:
            self.raise_alert(model, alert["kind"], alert["message"], report.summary())

    def raise_alert(self, model: str, kind: str, message: str, details: dict[str, Any]) -> None:
        logger.warning("ALERT %s (%s): %s", model, kind, message)
        self.alerts.labels(model, kind).inc()
        if self.webhook_url:
            self._post({"model": model, "kind": kind, "message": message, "details": details})

    def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, default=str).encode("utf-8")
        request = urllib.request.Request(
            self.webhook_url or "", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout_s
            ) as response:  # http(s) only: checked by the config
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.webhook_failures.labels(payload["model"]).inc()
            logger.error("alert webhook %s failed: %s", self.webhook_url, exc)
