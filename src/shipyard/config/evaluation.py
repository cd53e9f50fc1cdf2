"""Limits of the job's ``evaluation.fairness_thresholds`` (the fairness report is shipyard.evaluation.fairness)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FairnessThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    demographic_parity_difference: float = Field(default=0.1, ge=0, le=1)
    equalized_odds_difference: float = Field(default=0.1, ge=0, le=1)
    selection_rate_ratio: float = Field(default=0.8, ge=0, le=1)  # four-fifths rule
    accuracy_gap: float = Field(default=0.05, ge=0, le=1)
    min_group_size: int = Field(default=30, ge=1)
