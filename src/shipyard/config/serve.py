"""Settings of the model server (``shipyard serve``): one set of defaults and range checks.

Today the server's options live in four places (serve/cli.py's options, serve/app.py's ``ServeConfig`` and
``create_app`` keywords, serve/batching.py's ``MicroBatcher``) and travel as an untyped dict to the workers. This
model is where they should all come from: the CLI builds one ``ServeSettings``, workers receive its JSON
(``model_dump_json`` / ``model_validate_json``), and the app and the batcher read its fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipyard.config.errors import validate_section


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
