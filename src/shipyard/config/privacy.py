"""The job's ``privacy`` section: differentially private training (DP-SGD, run by shipyard.training.privacy)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PRIVACY_HINT = (
    "privacy: {differential_privacy: {target_epsilon: 8, target_delta: 1.0e-5, max_grad_norm: 1.0, "
    "accountant: prv|rdp}}"
)


class DPConfig(BaseModel):
    """DP-SGD settings: the (epsilon, delta) budget to meet over the planned steps, and the clipping bound."""

    model_config = ConfigDict(extra="forbid")

    target_epsilon: float = Field(gt=0, le=100)
    target_delta: float = Field(default=1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    accountant: Literal["prv", "rdp"] = "prv"


class PrivacyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    differential_privacy: DPConfig | None = None
