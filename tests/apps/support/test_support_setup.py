"""`shipyard app support setup` trains the intent job (the bundled one's model, on the tiny run's splits) after the
retrieval run, and the assistant then takes its intents from that classifier."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support_helpers import support_config
from typer.testing import CliRunner

from shipyard.apps.support.assistant import Assistant
from shipyard.apps.support.cli import support_cli
from shipyard.apps.support.config import load_support_config
from shipyard.config.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[3] / "examples" / "support" / "support_intent.yaml"


def _intent_job(folder: Path, run: Path) -> Path:
    """The bundled intent job, reading the tiny retrieval run's stored splits instead of the full run's."""
    job = yaml.safe_load(BUNDLED.read_text())
    for key, split in (("source", "train"), ("validation_source", "validation"), ("test_source", "test")):
        job["data"][key] = {"path": str(run / "splits" / f"{split}.parquet")}
    path = folder / "intent.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_setup_trains_the_intent_job_once_and_the_assistant_uses_it(support_root: Path, tmp_path: Path) -> None:
    cfg_path = support_config(tmp_path / "cfg", intent={"run": "runs/intent", "job": "intent.yaml"})
    cfg, base = load_support_config(cfg_path)
    _intent_job(base, Path(cfg.retrieval_run))
    result = CliRunner().invoke(support_cli, ["setup", str(cfg_path)])
    assert result.exit_code == 0, result.output
    assert "training" in result.output and "intent run trained in" in result.output
    run = base / "runs" / "intent"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.7, metrics["test"]  # 6 intents, about 24 held-out queries
    again = CliRunner().invoke(support_cli, ["setup", str(cfg_path)])
    assert again.exit_code == 0 and "training" not in again.output  # an existing run is kept

    bot = Assistant(cfg, base)
    test = pd.read_parquet(Path(cfg.retrieval_run) / "splits" / "test.parquet")
    row = test.iloc[0]
    intent, confidence, _ = bot.classify(row["query"])
    assert intent == bot.intent_model.predict(row["query"])[0] and 0 < confidence <= 1
    hits = sum(bot.classify(q)[0] == g for q, g in zip(test["query"], test["group"], strict=True))
    assert hits / len(test) >= 0.7


def test_the_answer_comes_from_the_classifiers_intent_when_no_retrieved_passage_has_it(make_assistant) -> None:
    bot = make_assistant(intent={"vote_k": 1}, escalation={"intents": [], "min_confidence": 0.0})
    question = "how do I reset my password"
    top = bot.searcher.search([question], 1)[0][0]["group"]
    other = next(g for g in ("complaint", "recover_password") if g != top)  # neither an order intent

    class Fixed:  # a classifier that disagrees with the best retrieved passage
        feature = "query"

        def predict(self, text: str) -> tuple[str, float]:
            return other, 0.9

    bot.intent_model = Fixed()
    reply = bot.reply(bot.store.new_conversation(), question)
    assert reply.intent == other and bot.searcher.index.passages[reply.passage_id]["group"] == other


def test_an_intent_job_needs_the_run_it_trains(tmp_path: Path) -> None:
    path = support_config(tmp_path / "cfg", intent={"job": "intent.yaml"})
    with pytest.raises(ConfigError, match=r"intent\.run"):
        load_support_config(path)
