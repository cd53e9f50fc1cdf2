"""Prometheus metrics of the REST service, in the app's own registry (two apps in one process never clash)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServeMetrics:
    """Requests, latency, batching, model time, errors and model versions (served at ``/metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "shipyard_requests",
            "HTTP requests by model, endpoint and status code",
            ["model", "endpoint", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_latency_seconds",
            "Request latency (whole request, as seen by the server)",
            ["model", "endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.batch_size = Histogram(
            "shipyard_batch_size",
            "Instances per model batch (after dynamic batching)",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.batch_requests = Histogram(
            "shipyard_batch_requests",
            "Requests merged into one model batch",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.inference = Histogram(
            "shipyard_inference_seconds",
            "Model time per batch",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.instances = Counter("shipyard_instances", "Instances predicted", ["model"], registry=r)
        self.errors = Counter("shipyard_errors", "Error responses by model and kind", ["model", "kind"], registry=r)
        self.model_version = Gauge("shipyard_model_version", "Version being served", ["model"], registry=r)
        self.model_ready = Gauge("shipyard_model_ready", "1 when the model is loaded and warm", ["model"], registry=r)
        self.inflight = Gauge("shipyard_inflight_requests", "Requests being handled", registry=r)

    def batch_observer(self, model: str) -> Callable[[int, int, float], None]:
        """A `MicroBatcher` ``on_batch`` callback recording one batch of ``model`` (predict's and recommend's)."""

        def on_batch(n_instances: int, n_requests: int, seconds: float) -> None:
            self.batch_size.labels(model).observe(n_instances)
            self.batch_requests.labels(model).observe(n_requests)
            self.inference.labels(model).observe(seconds)

        return on_batch
