"""Request and response bodies of the fixed routes (models list, admin versions, probes).

Each model's own predict request and response (one schema per model, from its features and task) are built in
:mod:`shipyard.serve.models` (``request_model`` / ``response_model``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InputSchema(BaseModel):
    features: list[dict[str, Any]] = Field(description="Each input column: name and type.")


class ModelInfo(BaseModel):
    """A served model: its version now taking traffic, its inputs, labels and metrics."""

    name: str
    version: int | None = Field(description="The version taking traffic (None until loaded).")
    ready: bool
    task: str
    backend: str
    run_id: Any = None
    input_schema: InputSchema
    target: Any = None
    labels: list[Any] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    loaded_at: str | None = None
    max_instances: int = Field(description="The most instances one predict request may send.")
    predict_url: str
    error: str | None = Field(default=None, description="Why the model failed to load, if it did.")


class ModelList(BaseModel):
    models: list[ModelInfo]


class VersionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    path: str = Field(..., min_length=1, description="Run or model folder on the server to load as the next version.")


class VersionLoaded(BaseModel):
    name: str
    version: int
    previous_version: int | None
    path: str
    backend: str
    load_seconds: float


class Health(BaseModel):
    status: str


class ModelReadiness(BaseModel):
    ready: bool
    version: int | None
    error: str | None


class Readiness(BaseModel):
    status: str = Field(description="'ready', or 'not_ready' (with status 503 and an error).")
    models: dict[str, ModelReadiness]
