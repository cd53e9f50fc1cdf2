"""One turn of the support assistant: intent + retrieved answer, slots, tools, escalation, stored redacted.

Order of decisions for a customer message (docs/support.md has the why):
1. empty -> ask to rephrase; over ``max_message_chars`` -> cut before the models see it;
2. the customer asks for a person -> escalate;
3. intent (the intent run's classifier, else the vote of the retrieved passages' intents) and its confidence;
4. slots from the message, the order number falling back to the conversation's previous one (follow-ups);
5. an intent on the escalation list, or confidence under ``min_confidence`` -> escalate;
6. an order intent: the order-status tool (asking for the number when there is none); a failing tool escalates;
7. else the answer: the intent's template if configured, otherwise the best passage of that intent, with its
   {{Placeholders}} filled.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipyard.apps.support.config import SupportConfig, resolve
from shipyard.apps.support.learning import LoopLink, PairLink
from shipyard.apps.support.slots import extract
from shipyard.apps.support.store import SupportStore
from shipyard.apps.support.tools import OrderStatusTool, Tool, ToolFailed, call_tool
from shipyard.models.searcher import Searcher

log = logging.getLogger(__name__)

ESCALATED = "I'm passing this conversation to a member of our team; they will reply here shortly."
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


@dataclass
class Reply:
    conversation_id: str
    answer: str
    intent: str | None = None
    confidence: float = 0.0
    escalated: bool = False
    reason: str | None = None
    ticket_id: int | None = None
    turn_id: int | None = None
    passage_id: int | None = None
    slots: dict[str, str] = field(default_factory=dict)
    tool: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class IntentModel:
    """A text classification run's artefact: (intent, probability) per message."""

    def __init__(self, run: Path) -> None:
        from shipyard.artifact import Artifact

        self.artifact = Artifact.load(run)
        texts = [f["name"] for f in self.artifact.features if f["type"] == "text"]
        if len(texts) != 1:
            raise ValueError(f"the intent run must take one text feature; it takes {self.artifact.features}")
        self.feature = texts[0]

    def predict(self, text: str) -> tuple[str, float]:
        row = self.artifact.predict_records([{self.feature: text}])[0]
        return str(row["label"]), float(max(row["probabilities"].values()))


class Assistant:
    def __init__(
        self,
        cfg: SupportConfig,
        base: Path,
        *,
        searcher: Searcher | None = None,
        store: SupportStore | None = None,
        tools: dict[str, Tool] | None = None,
    ) -> None:
        self.cfg = cfg
        self.searcher = searcher or Searcher.load(resolve(base, cfg.retrieval_run))
        self.intent_model = IntentModel(resolve(base, cfg.intent.run)) if cfg.intent.run else None
        self.loop = (  # helpful answers and agents' corrections become the intent run's feedback (learning.py)
            LoopLink(
                resolve(base, cfg.intent.run),
                cfg.intent.name,
                self.intent_model.feature,
                retention_days=cfg.store.retention_days,
            )
            if self.intent_model is not None and cfg.intent.run
            else None
        )
        self.pairs = PairLink(  # helpful answers and agents' passages become the retrieval run's training pairs
            resolve(base, cfg.retrieval_run), cfg.retrieval_name, retention_days=cfg.store.retention_days
        )
        self.store = store or SupportStore(
            resolve(base, cfg.store.path), redact_types=cfg.store.redact, retention_days=cfg.store.retention_days
        )
        if tools is None:
            tools = {}
            if cfg.tools.order_status is not None:
                order = cfg.tools.order_status
                tools["order_status"] = OrderStatusTool(resolve(base, order.db), order.timeout_s)
        self.tools = tools
        self._human = [p.lower() for p in cfg.escalation.human_phrases]

    # ------------------------------------------------------------------ understanding
    def classify(self, text: str) -> tuple[str | None, float, list[dict[str, Any]]]:
        """(intent, confidence, retrieved passages best first)."""
        hits = self.searcher.search([text], self.cfg.intent.vote_k)[0]
        if self.intent_model is not None:
            intent, confidence = self.intent_model.predict(text)
            return intent, confidence, hits
        votes: dict[str, float] = {}
        for hit in hits:  # cosine-weighted vote; the confidence is the winner's share of the weight
            votes[hit["group"]] = votes.get(hit["group"], 0.0) + max(hit["score"], 0.0)
        total = sum(votes.values())
        if not votes or total <= 0:
            return None, 0.0, hits
        intent = max(votes, key=votes.__getitem__)
        return intent, votes[intent] / total, hits

    def wants_human(self, text: str) -> bool:
        lowered = f" {text.lower()} "
        return any(p in lowered for p in self._human)

    # ------------------------------------------------------------------ one turn
    def reply(self, conversation_id: str, message: str) -> Reply:
        convo = self.store.conversation(conversation_id)  # a ShipyardError for an unknown id
        text = (message or "").strip()[: self.cfg.max_message_chars]
        if not text:
            return self._answer(
                conversation_id,
                message or "",
                Reply(conversation_id, "Could you tell me a bit more about what you need help with?"),
            )
        slots = extract(text, self.cfg.products).as_dict()
        if "order_id" not in slots and convo["order_id"]:
            slots["order_id"] = convo["order_id"]  # "and when will it arrive?" is about the order named before
        reply = Reply(conversation_id, "", slots=slots)
        if self.wants_human(text):
            return self._escalate(text, reply, "customer asked for a person")
        reply.intent, reply.confidence, hits = self.classify(text)
        if reply.intent in self.cfg.escalation.intents:
            return self._escalate(text, reply, f"intent {reply.intent} goes to a person")
        if reply.intent is None or reply.confidence < self.cfg.escalation.min_confidence:
            return self._escalate(text, reply, f"low confidence ({reply.confidence:.2f})")
        asks = self.cfg.tools.ask_order_number
        if (
            reply.intent in self.cfg.tools.order_intents
            and "order_status" in self.tools
            and ("order_id" in slots or asks is None or reply.intent in asks)
        ):
            try:
                return self._order_answer(text, reply)
            except ToolFailed as exc:
                reply.tool = {"name": exc.tool, "error": exc.reason}
                return self._escalate(
                    text,
                    reply,
                    f"tool failed: {exc.reason}",
                    message=f"I couldn't check that just now ({exc.reason}). " + ESCALATED,
                )
        best = next((h for h in hits if h["group"] == reply.intent), None)
        if best is None and self.intent_model is not None:  # the classifier's intent is not among the k best
            found = self.searcher.search([text], 1, filters={"group": reply.intent})[0]
            best = found[0] if found else None
        best = best or (hits[0] if hits else None)
        reply.passage_id = best["id"] if best else None
        reply.answer = self._render(reply.intent, slots, answer=best["text"] if best else "")
        return self._answer(conversation_id, text, reply)

    def _order_answer(self, text: str, reply: Reply) -> Reply:
        if "order_id" not in reply.slots:
            reply.answer = "Could you give me your order number? It is in your confirmation e-mail."
            return self._answer(reply.conversation_id, text, reply)
        result = call_tool(self.tools["order_status"], reply.slots)
        reply.tool = {"name": "order_status", **result}
        if not result.get("found"):
            reply.answer = (
                f"I couldn't find an order numbered {reply.slots['order_id']}. Could you check the "
                "number in your confirmation e-mail?"
            )
        else:
            values = {**reply.slots, "status": result["status"], "eta": result["eta"], "product": result["product"]}
            default = "Order {order_id} is {status}; expected delivery: {eta}."
            reply.answer = self._format(self.cfg.templates.get(reply.intent or "", default), values)
        return self._answer(reply.conversation_id, text, reply)

    def _render(self, intent: str, slots: dict[str, str], *, answer: str) -> str:
        template = self.cfg.templates.get(intent)
        filled = self._placeholders(answer, slots)
        return self._format(template, {**slots, "answer": filled}) if template else filled

    def _placeholders(self, text: str, slots: dict[str, str]) -> str:
        values = {k.lower(): v for k, v in self.cfg.placeholders.items()}

        def fill(match: re.Match[str]) -> str:
            key = match.group(1).lower()
            if ("order" in key or "purchase" in key) and ("number" in key or "id" in key) and "order_id" in slots:
                return slots["order_id"]
            return values.get(key, match.group(1))

        return _PLACEHOLDER.sub(fill, text)

    @staticmethod
    def _format(template: str, values: dict[str, str]) -> str:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        return template.format(**{n: values.get(n, "(unknown)") for n in names})

    def _escalate(self, text: str, reply: Reply, reason: str, *, message: str = ESCALATED) -> Reply:
        reply.escalated, reply.reason, reply.answer = True, reason, message
        reply = self._answer(reply.conversation_id, text, reply)
        reply.ticket_id = self.store.open_ticket(reply.conversation_id, reason)
        return reply

    def _answer(self, cid: str, text: str, reply: Reply) -> Reply:
        order = reply.slots.get("order_id")
        self.store.add_turn(cid, "customer", text, order_id=order)
        reply.turn_id = self.store.add_turn(
            cid,
            "assistant",
            reply.answer,
            intent=reply.intent,
            confidence=reply.confidence,
            passage_id=reply.passage_id,
            escalated=reply.escalated,
        )
        return reply

    # ------------------------------------------------------------------ feedback and agents
    def feedback(self, turn_id: int, helpful: bool) -> dict[str, Any]:
        state = self.store.add_feedback(turn_id, helpful=helpful)
        out: dict[str, Any] = {"recorded": True, "escalated": False, "ticket_id": None, "loop": False, "pair": False}
        if helpful:
            text, intent = self.store.question(turn_id)
            if intent and self.loop is not None:  # an escalation note has no intent to confirm
                out["loop"] = self._to_loop(text, intent, predicted=intent, actor="customer")
            passage = self.store.answered_passage(turn_id)
            if passage is not None:  # the answer showed this passage (a tool's answer shows none)
                out["pair"] = self._pair_to_loop(text, passage, predicted=passage, actor="customer")
        if not helpful and state["unhelpful"] >= self.cfg.escalation.unhelpful_answers:
            cid = state["conversation_id"]
            out["ticket_id"] = self.store.open_ticket(cid, f"{state['unhelpful']} unhelpful answers")
            out["escalated"] = True
            out["answer"] = ESCALATED
            self.store.add_turn(cid, "assistant", ESCALATED, escalated=True)
        return out

    def agent_answer(
        self,
        ticket_id: int,
        agent: str,
        text: str,
        *,
        close: bool = False,
        correct_intent: str | None = None,
        correct_passage_id: int | None = None,
    ) -> dict[str, Any]:
        ticket = self.store.ticket(ticket_id)
        cid = ticket["conversation_id"]
        if correct_intent and self.loop is not None:
            self.loop.check(correct_intent)  # an unknown intent is refused before anything is written
        if correct_passage_id is not None:
            self.pairs.check(correct_passage_id)  # so is a passage the retrieval run does not have
        turn = self.store.add_turn(cid, "agent", text)
        sent = paired = False
        if correct_intent or correct_passage_id is not None:  # the agent's correction of the last answer
            answers = [t for t in ticket["conversation"]["turns"] if t["role"] == "assistant"]
            last = [t for t in answers if not t["escalated"]] or answers  # the answer, not the hand-over note
            if last:
                self.store.add_feedback(
                    last[-1]["id"],
                    helpful=None,
                    correct_intent=correct_intent,
                    correct_passage_id=correct_passage_id,
                    source=f"agent:{agent}",
                )
                if correct_intent and self.loop is not None:
                    question, predicted = self.store.question(last[-1]["id"])
                    sent = self._to_loop(question, correct_intent, predicted=predicted, actor=f"agent:{agent}")
                if correct_passage_id is not None:
                    question, _ = self.store.question(last[-1]["id"])
                    shown = last[-1]["passage_id"]
                    paired = self._pair_to_loop(question, correct_passage_id, predicted=shown, actor=f"agent:{agent}")
        if close:
            self.store.close_ticket(ticket_id, agent)
        return {"ticket_id": ticket_id, "turn_id": turn, "closed": close, "loop": sent, "pair": paired}

    def _to_loop(self, text: str, label: str, *, predicted: str | None, actor: str) -> bool:
        """Send one labelled row; a failure is logged (the row stays in this store for export-feedback)."""
        assert self.loop is not None
        from shipyard.errors import ShipyardError

        try:
            self.loop.send(text, label, predicted=predicted, actor=actor)
        except ShipyardError as exc:
            log.warning("support feedback not sent to the loop (kept for export-feedback): %s", exc)
            return False
        return True

    def _pair_to_loop(self, text: str, passage: int, *, predicted: int | None, actor: str) -> bool:
        """Send one query -> passage pair; a failure is logged (the pair stays here for export-feedback)."""
        from shipyard.errors import ShipyardError

        try:
            self.pairs.send(text, passage, predicted=predicted, actor=actor)
        except ShipyardError as exc:
            log.warning("support pair not sent to the loop (kept for export-feedback): %s", exc)
            return False
        return True
