"""The monitor's one YAML file: model, watch-list, sources, windows, alert rules, sinks and store.

Validated like a job: every problem at once, each with its YAML path, line and a suggestion for a misspelt key
(through the project's loader and error formatter in ``shipyard.config``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shipyard.config.errors import ConfigError, Problem, problems_from
from shipyard.config.loader import MAX_CONFIG_BYTES, parse_yaml
from shipyard.errors import ShipyardError

WINDOW_PATTERN = re.compile(r"^(\d+)(s|min|h|d)$")
UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def window_seconds(window: str) -> int:
    """``"1min"`` -> 60, ``"1h"`` -> 3600, ``"1d"`` -> 86400."""
    match = WINDOW_PATTERN.match(window)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"a window is a number and a unit (s, min, h, d), e.g. 1min, 1h, 1d; got {window!r}")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entity(Strict):
    """One watch-list entry. ``ambiguous`` names (e.g. ``Apple``, ``Shell``) count only with support: the exact
    case, and a cashtag, another of the entity's names or one of its ``context`` words in the same document."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    names: list[str] = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    tickers: list[str] = Field(default_factory=list)
    cashtags: list[str] = Field(default_factory=list)
    chinese_names: list[str] = Field(default_factory=list)
    ambiguous: list[str] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list)

    @field_validator("cashtags")
    @classmethod
    def _cashtags(cls, tags: list[str]) -> list[str]:
        return [t if t.startswith("$") else f"${t}" for t in tags]


class ModelSettings(Strict):
    run: str  # a Financial PhraseBank run folder (or a model folder)
    prefer: list[Literal["int8", "onnx", "original"]] = Field(default_factory=lambda: ["int8", "onnx", "original"])
    batch_size: int = Field(default=64, ge=1)  # sentences per model call (sorted by length: little padding)
    max_sentences: int = Field(default=8, ge=1)  # per document: long articles are scored on their first sentences
    num_threads: int | None = Field(default=None, ge=1)


class FolderSource(Strict):
    type: Literal["folder"] = "folder"
    name: str = "folder"
    path: str
    patterns: list[str] = Field(default_factory=lambda: ["*.jsonl", "*.csv"])


class HttpSource(Strict):
    type: Literal["http"] = "http"
    name: str = "http"
    max_batch: int = Field(default=1000, ge=1)  # documents per POST


class RedisSource(Strict):
    type: Literal["redis"] = "redis"
    name: str = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    stream: str = "finmon:documents"
    group: str = "finmon"
    consumer: str = "monitor-1"
    block_ms: int = Field(default=200, ge=0)


Source = Annotated[FolderSource | HttpSource | RedisSource, Field(discriminator="type")]


class Processing(Strict):
    languages: list[str] = Field(default_factory=lambda: ["en"])  # others are stored but not scored
    dedup_threshold: float = Field(default=0.7, gt=0, le=1)  # Jaccard similarity of word shingles
    dedup_num_perm: int = Field(default=128, ge=16)
    dedup_memory: int = Field(default=50_000, ge=0)  # documents the near-duplicate index remembers
    max_text_chars: int = Field(default=100_000, ge=100)


class AlertRules(Strict):
    window: str = "1min"
    baseline: int = Field(default=120, ge=5)  # buckets of rolling baseline before the current one
    min_baseline_volume: int = Field(default=10, ge=0)  # documents in the baseline before any rule fires
    min_volume: int = Field(default=5, ge=1)  # documents in the bucket before any rule fires
    volume_z: float = Field(default=4.0, gt=0)
    sentiment_z: float = Field(default=4.0, gt=0)
    cusum_k: float = Field(default=1.0, ge=0)  # slack, in standard errors
    cusum_h: float = Field(default=8.0, gt=0)  # decision threshold, in standard errors
    cooldown: str = "30min"
    grace: str = "0s"  # how long after a bucket's end late documents may still arrive
    top_documents: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _windows(self) -> AlertRules:
        for value in (self.window, self.cooldown):
            window_seconds(value)
        if self.grace != "0s":
            window_seconds(self.grace)
        return self


class Webhook(Strict):
    url: str
    retries: int = Field(default=20, ge=0)
    backoff_seconds: float = Field(default=1.0, gt=0)
    max_backoff_seconds: float = Field(default=60.0, gt=0)
    timeout_seconds: float = Field(default=5.0, gt=0)


class Sinks(Strict):
    log: bool = True
    prometheus: bool = True
    webhook: Webhook | None = None


class Batching(Strict):
    size: int = Field(default=256, ge=1)
    max_wait_seconds: float = Field(default=0.5, ge=0)
    progress_seconds: float = Field(default=10.0, gt=0)


class Corrections(Strict):
    """Analysts' sentiment corrections: kept in the monitor's store and, with ``loop`` on, sent to the loop's
    feedback store of the model's runs folder (``shipyard retrain <run>`` then trains on them)."""

    loop: bool = True
    model_name: str = Field(default="finmon", pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # the name feedback is filed under
    retention_days: float = Field(default=30.0, gt=0)  # how long the loop keeps the corrected text
    database_url: str | None = None  # the loop store, when it is not the runs folder's SQLite file


class FinmonConfig(Strict):
    name: str = "finmon"
    model: ModelSettings
    watchlist: list[Entity] = Field(min_length=1)
    sources: list[Source] = Field(default_factory=list)
    windows: list[str] = Field(default_factory=lambda: ["1min", "1h", "1d"])
    alerts: AlertRules = Field(default_factory=AlertRules)
    sinks: Sinks = Field(default_factory=Sinks)
    processing: Processing = Field(default_factory=Processing)
    batching: Batching = Field(default_factory=Batching)
    corrections: Corrections = Field(default_factory=Corrections)
    store: str = "finmon.sqlite"
    base_dir: str = "."  # set by the loader: relative paths start at the YAML file's folder

    @field_validator("windows")
    @classmethod
    def _known_windows(cls, windows: list[str]) -> list[str]:
        for value in windows:
            window_seconds(value)
        return windows

    @model_validator(mode="after")
    def _consistent(self) -> FinmonConfig:
        ids = [e.id for e in self.watchlist]
        if len(ids) != len(set(ids)):
            raise ValueError(f"watch-list ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
        if self.alerts.window not in self.windows:
            raise ValueError(f"alerts.window {self.alerts.window!r} must be one of windows {self.windows}")
        names = [s.name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError("source names must be unique (each keeps its own saved position)")
        return self

    def resolve(self, path: str) -> Path:
        """A path from the file, relative to the file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate


def validate_config(data: dict, file: str = "<finmon>", lines: dict | None = None) -> FinmonConfig:
    try:
        return FinmonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, FinmonConfig, file=file, lines=lines)) from None


def load_config(path: str | Path) -> FinmonConfig:
    """Read and validate a monitor file; raises ConfigError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ShipyardError("monitor config file does not exist", where=str(path))
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(str(path), None, "", "the file is too large for a monitor config")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ShipyardError(f"config is not UTF-8 text (byte {exc.start})", where=str(path)) from None
    data, lines = parse_yaml(text, str(path))
    data.setdefault("base_dir", str(path.resolve().parent))
    return validate_config(data, str(path), lines)
