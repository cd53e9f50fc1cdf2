"""The assistant's JSON API, mounted under ``/v1/apps/support`` behind the server's API keys.

Customers (scope ``predict``): start a conversation, send messages, give feedback. Agents (scope ``admin``):
list, read, answer and close tickets. Every failure is a JSON error (404 / 422); an unexpected error while
answering is logged and turned into an escalation, never a 5xx.
"""

# no `from __future__ import annotations`: FastAPI must see the request models

import logging
import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from shipyard.apps import AppContext
from shipyard.apps.support.assistant import ESCALATED, Assistant
from shipyard.apps.support.config import load_support_config
from shipyard.errors import ShipyardError
from shipyard.serve.dependencies import require_scope
from shipyard.serve.errors import ApiError
from shipyard.serve.security import Principal

log = logging.getLogger(__name__)
CONFIG_ENV = "SHIPYARD_SUPPORT_CONFIG"
MAX_BODY_CHARS = 20_000  # a message longer than this is refused (422); up to it, the assistant cuts it


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=MAX_BODY_CHARS)


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    turn_id: int
    helpful: bool


class AgentAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_BODY_CHARS)
    close: bool = False
    correct_intent: str | None = None
    correct_passage_id: int | None = None


def assistant_for(context: AppContext) -> Assistant:
    path = context.settings.get("config") or os.environ.get(CONFIG_ENV)
    if not path:
        raise ShipyardError(
            "the support application needs its config file",
            where=f"settings 'config' or ${CONFIG_ENV}",
            hint="shipyard app support serve CONFIG, or set SHIPYARD_SUPPORT_CONFIG for shipyard serve --apps",
        )
    cfg, base = load_support_config(Path(path))
    return Assistant(cfg, base)


def _guard(call: Any) -> Any:
    try:
        return call()
    except ShipyardError as exc:
        status = 404 if "no such" in exc.message or "no open" in exc.message or "no assistant" in exc.message else 422
        raise ApiError(status, "not_found" if status == 404 else "invalid_input", str(exc)) from None


def support_routers(context: AppContext, assistant: Assistant | None = None) -> list[APIRouter]:
    bot = assistant or assistant_for(context)
    router = APIRouter(tags=["support"])
    customer = Depends(require_scope("predict"))
    agent = Depends(require_scope("admin"))

    @router.post("/conversations", summary="Start a conversation")
    def start(_: Principal = customer) -> dict[str, Any]:
        return {"conversation_id": bot.store.new_conversation()}

    @router.post("/conversations/{cid}/messages", summary="Send a customer message; get the assistant's reply")
    def message(cid: str, body: Message, _: Principal = customer) -> dict[str, Any]:
        _guard(lambda: bot.store.conversation(cid))  # 404 for an unknown conversation
        try:
            return bot.reply(cid, body.text).as_dict()
        except ShipyardError as exc:
            raise ApiError(422, "invalid_input", str(exc)) from None
        except Exception as exc:  # a bug must not leave the customer without an answer: log it, hand over
            log.exception("support reply failed: %s", exc)
            reason = f"assistant error: {type(exc).__name__}"
            ticket = _guard(lambda: bot.store.open_ticket(cid, reason))
            return {
                "conversation_id": cid,
                "answer": ESCALATED,
                "escalated": True,
                "reason": "assistant error",
                "ticket_id": ticket,
            }

    @router.get("/conversations/{cid}", summary="A conversation (redacted turns)")
    def conversation(cid: str, _: Principal = customer) -> dict[str, Any]:
        return _guard(lambda: bot.store.conversation(cid))

    @router.post("/feedback", summary="Was an answer helpful?")
    def feedback(body: Feedback, _: Principal = customer) -> dict[str, Any]:
        return _guard(lambda: bot.feedback(body.turn_id, body.helpful))

    @router.get("/tickets", summary="The human queue (agents)")
    def tickets(status: str = "open", _: Principal = agent) -> dict[str, Any]:
        return {"tickets": _guard(lambda: bot.store.tickets(status if status != "all" else None))}

    @router.get("/tickets/{tid}", summary="One ticket with its conversation (agents)")
    def ticket(tid: int, _: Principal = agent) -> dict[str, Any]:
        return _guard(lambda: bot.store.ticket(tid))

    @router.post("/tickets/{tid}/answer", summary="Answer (and maybe close) a ticket; corrections feed retraining")
    def answer(tid: int, body: AgentAnswer, who: Principal = agent) -> dict[str, Any]:
        return _guard(
            lambda: bot.agent_answer(
                tid,
                who.name,
                body.text,
                close=body.close,
                correct_intent=body.correct_intent,
                correct_passage_id=body.correct_passage_id,
            )
        )

    @router.post("/tickets/{tid}/close", summary="Close a ticket (agents)")
    def close(tid: int, who: Principal = agent) -> dict[str, Any]:
        _guard(lambda: bot.store.close_ticket(tid, who.name))
        return {"ticket_id": tid, "closed": True}

    return [router]
