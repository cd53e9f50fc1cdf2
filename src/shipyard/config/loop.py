"""Settings of the continuous-learning loop (``shipyard.loop``): prediction log, drift thresholds, promotion rule.

``serve.log_predictions: {sample, retention_days}`` opts one served model into the prediction log;
``LoopSettings`` holds everything else, validated up front like every other section (``LoopSettings.parse``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from shipyard.config.errors import validate_section


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogPredictionsConfig(_Section):
    """Opt-in per served model: log this share of predictions and keep each for this many days."""

    sample: float = Field(default=1.0, gt=0.0, le=1.0)
    retention_days: float = Field(default=30.0, gt=0.0, le=3650.0)
    # rows are written in batches (one transaction each): a crash loses at most this many unflushed rows
    batch_size: int = Field(default=64, ge=1, le=10_000)
    flush_interval_s: float = Field(default=2.0, gt=0.0, le=3600.0)
    redact: bool = True  # run the personal-data detector over every text input before it is stored


class DriftThresholds(_Section):
    """When a drift check raises an alert.

    A feature drifts when its test is significant after a Bonferroni correction over the features checked
    (``alpha / n_features``) *and* its effect is large enough (PSI at least ``psi``, or for text the MMD
    permutation test alone): with thousands of rows a test finds trivial differences significant, and the effect
    floor keeps those from paging anyone (for text: MMD² at least ``mmd``).
    """

    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    psi: float = Field(default=0.1, gt=0.0)  # 0.1: "moderate shift" in the credit-scoring rule of thumb
    prediction_psi: float = Field(default=0.1, gt=0.0)
    # text: the MMD² (RBF kernel on MiniLM embeddings) must also reach this; same-population windows of SST-2 gave
    # 0.0001-0.0004, a fifth of Financial PhraseBank sentences 0.005 (docs/loop.md)
    mmd: float = Field(default=0.002, ge=0.0)
    mmd_permutations: int = Field(default=200, ge=20, le=10_000)
    text_sample: int = Field(default=300, ge=20, le=5000)  # texts embedded per side for the MMD test
    min_rows: int = Field(default=200, ge=10)  # fewer logged rows in the window: no verdict, no alert
    accuracy_drop: float = Field(default=0.05, ge=0.0, le=1.0)  # below the test accuracy by more: alert
    min_feedback: int = Field(default=50, ge=1)  # feedback rows needed before accuracy can alert


class MonitorConfig(_Section):
    window_s: float = Field(default=3600.0, gt=0.0)
    interval_s: float = Field(default=300.0, ge=1.0)  # the server's scheduled check
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    webhook_url: HttpUrl | None = None  # alerts are POSTed here as JSON (failures are logged, never raised)
    webhook_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)


class PromotionConfig(_Section):
    """The challenger replaces the champion only when it is better by ``margin`` and the test says so."""

    margin: float = Field(default=0.0, ge=0.0, le=1.0)  # absolute metric difference (accuracy, or -MAE)
    # when the decision is taken on the feedback slice, the most the challenger may lose on the fixed holdout
    holdout_tolerance: float = Field(default=0.01, ge=0.0, le=1.0)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    bootstrap: int = Field(default=2000, ge=100, le=100_000)
    min_feedback: int = Field(default=30, ge=1)  # the feedback slice counts only with this many labelled rows
    seed: int = 0


class LoopSettings(_Section):
    # any SQLAlchemy URL (postgresql+psycopg://...); None: the run store's SQLite file <runs_root>/shipyard.db
    database_url: str | None = None
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)

    @classmethod
    def parse(cls, raw: dict[str, Any] | LoopSettings | None, *, where: str = "loop") -> LoopSettings:
        return validate_section(cls, raw, where=where)


def parse_log_predictions(raw: Any, *, where: str = "serve.log_predictions") -> LogPredictionsConfig | None:
    """``None``/``False``: off; ``True``: the defaults; a mapping: validated (a ConfigError names bad keys)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return LogPredictionsConfig()
    return validate_section(LogPredictionsConfig, raw, where=where)


def load_loop_settings(path: str | Path) -> LoopSettings:
    """The ``loop:`` section of a YAML file (or the whole file, when it has no such key); problems with lines."""
    from pydantic import ValidationError

    from shipyard.config.errors import ConfigError, problems_from
    from shipyard.config.loader import parse_yaml
    from shipyard.errors import ShipyardError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ShipyardError(f"cannot read the loop settings: {exc}", where=str(path)) from None
    data, lines = parse_yaml(text, str(path))
    prefix: tuple[Any, ...] = ("loop",) if "loop" in data else ()
    raw = data["loop"] if prefix else data
    try:
        return LoopSettings.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, LoopSettings, file=str(path), lines=lines, prefix=prefix)) from None
