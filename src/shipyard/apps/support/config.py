"""The support assistant's one YAML file, validated like a job (every problem at once, with its line).

Paths inside the file are relative to the file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shipyard.config.errors import ConfigError, problems_from
from shipyard.config.loader import parse_yaml
from shipyard.errors import ShipyardError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntentConfig(_Strict):
    # a text classification run (e.g. a Bitext or Banking77 intent run) ...
    run: str | None = None
    # ... or, without one, the intent is the weighted vote of the groups of the k best retrieved passages
    vote_k: int = Field(default=10, ge=1, le=100)
    # the job that trains `run` (`shipyard app support setup` trains it when the run is missing, after the
    # retrieval run, whose stored splits the bundled intent job reads)
    job: str | None = None
    # the name the intent run's feedback is filed under in the loop store (`shipyard retrain` of the run uses it)
    name: str = Field(default="support-intent", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _job_needs_run(self) -> IntentConfig:
        if self.job is not None and self.run is None:
            raise ValueError("intent.job trains intent.run: name the run folder it trains as intent.run")
        return self


class EscalationConfig(_Strict):
    intents: list[str] = Field(default_factory=lambda: ["complaint", "contact_human_agent", "payment_issue"])
    min_confidence: float = Field(default=0.45, ge=0, le=1)
    unhelpful_answers: int = Field(default=2, ge=1)
    human_phrases: list[str] = Field(
        default_factory=lambda: [
            "human",
            "real person",
            "a person",
            "an agent",
            "live agent",
            "representative",
            "speak to someone",
            "talk to someone",
            "operator",
        ]
    )


class OrderToolConfig(_Strict):
    db: str = "orders.db"  # SQLite file with an `orders` table (order_id, status, eta, email, product)
    timeout_s: float = Field(default=2.0, gt=0, le=60)


class ToolsConfig(_Strict):
    order_status: OrderToolConfig | None = Field(default_factory=OrderToolConfig)
    # intents answered by the order-status tool (they need an order number)
    order_intents: list[str] = Field(default_factory=lambda: ["track_order", "delivery_period"])
    # of those, the ones that ask for the order number when none is known (None: all of them); the others use the
    # tool only with a number from the message or the conversation ("and when will it arrive?") and otherwise
    # answer from the FAQ ("how long does delivery take?")
    ask_order_number: list[str] | None = None


class StoreConfig(_Strict):
    path: str = "support.db"
    retention_days: int = Field(default=30, ge=1)
    redact: list[str] | None = None  # PII types to redact in stored text (None: all the detector knows)


class SupportConfig(_Strict):
    name: str = "support"
    retrieval_run: str  # a `task: retrieval` run over the FAQ answers
    retrieval_job: str | None = None  # the job that trains it (`shipyard app support train`)
    # the name its query -> passage feedback is filed under in the loop store (`shipyard retrain` of the run uses it)
    retrieval_name: str = Field(default="support-retrieval", min_length=1, max_length=64)
    intent: IntentConfig = Field(default_factory=IntentConfig)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    # per intent, an answer with slots: {order_id}, {email}, {product}, {status}, {eta}, {answer}
    templates: dict[str, str] = Field(default_factory=dict)
    # values for the answers' {{Placeholders}} (Bitext responses carry them), e.g. "Website Name": shop.example
    placeholders: dict[str, str] = Field(default_factory=dict)
    products: list[str] = Field(default_factory=list)  # product names the slot extractor recognises
    max_message_chars: int = Field(default=2000, ge=100)  # longer messages are cut before the models see them
    language: Literal["en"] = "en"

    @model_validator(mode="after")
    def _templates_use_known_slots(self) -> SupportConfig:
        import string

        known = {"order_id", "email", "product", "status", "eta", "answer"}
        for intent, text in self.templates.items():
            try:
                names = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            except ValueError as exc:
                raise ValueError(f"templates.{intent}: {exc}") from None
            unknown = names - known
            if unknown:
                raise ValueError(f"templates.{intent} uses unknown slot(s) {sorted(unknown)}; known: {sorted(known)}")
        return self


def load_support_config(path: str | Path) -> tuple[SupportConfig, Path]:
    """The validated config and the folder its relative paths start from."""
    path = Path(path)
    if not path.is_file():
        raise ShipyardError("no such support config file", where=str(path))
    raw, lines = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    try:
        cfg = SupportConfig.model_validate(raw)
    except ValidationError as exc:  # every problem at once, each with its YAML line
        raise ConfigError(problems_from(exc, SupportConfig, file=str(path), lines=lines)) from None
    return cfg, path.resolve().parent


def resolve(base: Path, value: str) -> Path:
    import os

    expanded = Path(os.path.expandvars(os.path.expanduser(value)))
    return expanded if expanded.is_absolute() else base / expanded
