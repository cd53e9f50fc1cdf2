"""Settings of the model server (``shipyard serve``): one set of defaults and range checks.

Every option of the server comes from here: the CLI (``shipyard serve``) maps its options onto one
``ServeSettings``, the app factory (``shipyard.serve.create_app``) takes it whole, and with ``--workers`` each
worker receives its JSON and validates it again (``shipyard.serve.workers``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.config.errors import validate_section

PUBLIC_ENDPOINT_GROUPS = ("docs", "metrics")  # what --public-endpoints may name; serve/limits.py maps them to paths


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=0, le=65535)  # 0: any free port (tests)
    workers: int = Field(default=1, ge=1)  # worker processes, each loading every model
    auth: bool = True  # False: no API keys (anyone may predict and load models)
    # micro-batching: the most instances one model batch gathers, and the longest wait to fill it
    max_batch_size: int = Field(default=64, ge=1, le=65536)
    max_wait_ms: float = Field(default=5.0, ge=0, le=10_000)
    # the most instances one request may send; at most max_batch_size (a request is never split across batches)
    max_instances_per_request: int | None = Field(default=None, ge=1)  # None: max_batch_size
    max_body_bytes: int = Field(default=1_000_000, ge=1)
    rate_limit_per_s: float = Field(default=100.0, ge=0)  # per API key; 0: no limit
    burst: int = Field(default=200, ge=1)
    key_cache_ttl_s: float = Field(default=30.0, ge=0)
    drain_timeout_s: float = Field(default=30.0, ge=0)  # on shutdown, wait this long for requests in flight
    access_log: bool = True  # one line per request (key name, status, latency, body hash; never inputs)
    key_store_path: Path | None = None  # the API keys (SQLite); also where the audit log of version loads goes
    client_timeout_s: float = Field(default=10.0, ge=0.1)  # a client's time to send a request's head, and its body
    # failed API keys per client address: `auth_failure_burst` at once, then one per 1/rate s (0: no limit)
    auth_failures_per_s: float = Field(default=1.0, ge=0)
    auth_failure_burst: int = Field(default=20, ge=1)
    # which of the docs (/docs, /redoc, /openapi.json) and /metrics answer without a key
    public_endpoints: tuple[str, ...] = PUBLIC_ENDPOINT_GROUPS
    # applications mounted under /v1/apps/<name>; resolved to routers ABOVE serve (see shipyard.serve.workers)
    apps: tuple[str, ...] = ()

    @field_validator("public_endpoints", mode="before")
    @classmethod
    def _public_groups(cls, value: Any) -> Any:
        """``"docs,metrics"``, ``"none"`` or a list -> the sorted groups (``"none"``: none of them)."""
        if value is None:
            return PUBLIC_ENDPOINT_GROUPS
        items = value.split(",") if isinstance(value, str) else list(value)
        names = {str(v).strip().lower() for v in items if str(v).strip()} - {"none"}
        unknown = names - set(PUBLIC_ENDPOINT_GROUPS)
        if unknown:
            raise ValueError(
                f"unknown public endpoint group(s): {', '.join(sorted(unknown))}; use a comma-separated subset "
                f"of {', '.join(PUBLIC_ENDPOINT_GROUPS)}, or 'none'"
            )
        return tuple(sorted(names))

    @model_validator(mode="after")
    def _request_fits_a_batch(self) -> ServeSettings:
        if self.max_instances_per_request is not None and self.max_instances_per_request > self.max_batch_size:
            raise ValueError(
                f"max_instances_per_request ({self.max_instances_per_request}) must not exceed max_batch_size "
                f"({self.max_batch_size}): a request is answered from one batch"
            )
        return self

    @property
    def request_limit(self) -> int:
        """The most instances one request may send."""
        return self.max_instances_per_request or self.max_batch_size

    @classmethod
    def parse(cls, raw: dict[str, Any] | ServeSettings | None, *, where: str = "serve") -> ServeSettings:
        """Validate raw settings (CLI options, the workers' JSON); a ConfigError names each bad one."""
        return validate_section(cls, raw, where=where)
