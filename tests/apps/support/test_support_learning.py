"""Support feedback reaches the continuous-learning loop: a helpful answer and an agent's correction become
labelled rows of the intent run (what `shipyard retrain` learns from), redacted; a correction naming an intent
the run does not know is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from support_helpers import support_config, tiny_intent_run

from shipyard.apps.support.assistant import Assistant
from shipyard.apps.support.config import load_support_config
from shipyard.errors import ShipyardError
from shipyard.loop.feedback import labelled_rows
from shipyard.loop.store import LoopStore


@pytest.fixture(scope="module")
def intent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_intent_run(tmp_path_factory.mktemp("support_intent"))


def test_helpful_answers_and_agent_corrections_become_loop_feedback(intent_run: Path, searcher, tmp_path) -> None:
    escalation = {"intents": [], "min_confidence": 0.0}  # a 3-step model may say anything: answer it
    path = support_config(tmp_path / "cfg", intent={"run": str(intent_run), "name": "intents"}, escalation=escalation)
    cfg, base = load_support_config(path)
    bot = Assistant(cfg, base, searcher=searcher)
    assert bot.intent_model is not None and bot.loop is not None
    store = LoopStore.open(intent_run.parent)
    cid = bot.store.new_conversation()
    answer = bot.reply(cid, "I forgot my password, write to me at jane.doe@example.com")
    assert not answer.escalated and answer.intent in bot.intent_model.artifact.meta["labels"]
    assert bot.feedback(answer.turn_id, helpful=True)["loop"] is True
    rows = labelled_rows(store, "intents", under=intent_run)
    assert list(rows["_target"]) == [answer.intent]
    assert "jane.doe@example.com" not in rows["instruction"][0]  # redacted before it was stored (twice over)
    ticket = bot.reply(cid, "let me talk to an agent").ticket_id
    assert ticket is not None
    with pytest.raises(ShipyardError, match="not one of the intent model's labels"):
        bot.agent_answer(ticket, "ann", "Hi", correct_intent="no_such_intent")
    assert [t["role"] for t in bot.store.conversation(cid)["turns"]].count("agent") == 0  # nothing written
    out = bot.agent_answer(ticket, "ann", "Here is the reset link.", close=True, correct_intent="recover_password")
    assert out["loop"] is True and out["closed"]
    rows = labelled_rows(store, "intents", under=intent_run).sort_values("_feedback_at")
    assert list(rows["_target"]) == [answer.intent, "recover_password"]
    assert rows["instruction"].iloc[1].startswith("I forgot my password")  # the words the corrected answer replied to
    assert list(rows["_label"]) == [answer.intent, answer.intent]  # what the model said, for feedback accuracy


def test_helpful_answers_and_agents_passages_become_retrieval_pairs(searcher, tmp_path) -> None:
    from shipyard.loop.pairs import feedback_pairs

    path = support_config(tmp_path / "cfg", retrieval_name="pairs-test")
    cfg, base = load_support_config(path)
    bot = Assistant(cfg, base, searcher=searcher)
    store = LoopStore.open(Path(cfg.retrieval_run).parent)
    cid = bot.store.new_conversation()
    ok = bot.reply(cid, "how can I reset my password? I am jane.doe@example.com")
    assert ok.passage_id is not None and bot.feedback(ok.turn_id, helpful=True)["pair"] is True
    ticket = bot.reply(cid, "let me talk to an agent").ticket_id
    with pytest.raises(ShipyardError, match="correct_passage_id 99999 is not a passage"):
        bot.agent_answer(ticket, "ann", "Hi", correct_passage_id=99999)
    other = next(pid for pid, p in searcher.index.passages.items() if p["group"] == "recover_password")
    assert bot.agent_answer(ticket, "ann", "Use this link.", correct_passage_id=other)["pair"] is True
    pairs = feedback_pairs(store, "pairs-test")
    assert [int(p) for p in pairs["passage_id"]] == [ok.passage_id, other]
    assert pairs["query"].str.startswith("how can I reset my password").all()
    assert not pairs["query"].str.contains("jane.doe@example.com").any()  # redacted before it was stored
