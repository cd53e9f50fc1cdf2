"""Promote and roll back: switch the served version through the server, and record who did it and why.

The switch itself is the server's zero-downtime one (``POST /v1/models/{name}/versions`` with an admin key: the
new version is loaded and warmed up, then traffic moves to it). Every decision, promotion and rollback is an event
in the loop store (``decision`` / ``promote`` / ``rollback``, with actor, reason and the paths), which the
dashboard lists and :func:`rollback` reads to find the version to return to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.loop.compare import Decision
from shipyard.loop.store import LoopStore

logger = logging.getLogger(__name__)


def switch_version(server_url: str, api_key: str | None, model: str, path: str, *, timeout_s: float = 300.0) -> dict:
    """Ask a running server to load ``path`` as the new version of ``model``; its answer, or a ShipyardError."""
    import httpx  # only the commands that talk to a server need it

    url = f"{server_url.rstrip('/')}/v1/models/{model}/versions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.post(url, json={"path": str(path)}, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ShipyardError(f"cannot reach the server: {exc}", where=url, hint="is `shipyard serve` running?") from None
    if response.status_code != 200:
        try:
            message = response.json().get("error", {}).get("message") or response.text
        except ValueError:
            message = response.text
        raise ShipyardError(f"the server refused the switch ({response.status_code}): {message}", where=url)
    return response.json()


def record_decision(
    store: LoopStore, model: str, decision: Decision, *, champion: str, challenger: str, actor: str
) -> int:
    verdict = "promote" if decision.promote else "keep the champion"
    return store.record_event(
        model,
        "decision",
        actor=actor,
        reason=f"{verdict}: " + "; ".join(decision.reasons),
        details={"champion": champion, "challenger": challenger, **decision.as_dict()},
        at=time.time(),
    )


def promote(
    store: LoopStore,
    model: str,
    *,
    champion: str,
    challenger: str,
    decision: Decision,
    actor: str,
    why: str = "",
    switch: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Switch to the challenger only when ``decision`` says so; the decision is recorded either way.

    ``switch(path)`` moves the server to ``path`` (:func:`switch_version` over HTTP, or the server's own loader);
    None records the promotion only (the next ``shipyard serve`` of the model should use the challenger).
    """
    record_decision(store, model, decision, champion=champion, challenger=challenger, actor=actor)
    if not decision.promote:
        raise ShipyardError(
            "the challenger was not promoted: " + "; ".join(decision.reasons),
            where=challenger,
            hint="the champion keeps serving; the decision is recorded (`shipyard monitor` / the dashboard)",
        )
    answer = switch(challenger) if switch is not None else {}
    return record_promotion(store, model, champion=champion, challenger=challenger, decision=decision,
                            actor=actor, why=why, answer=answer)  # fmt: skip


def record_promotion(
    store: LoopStore,
    model: str,
    *,
    champion: str,
    challenger: str,
    decision: Decision,
    actor: str,
    why: str,
    answer: dict[str, Any],
) -> dict[str, Any]:
    reason = why or "; ".join(decision.reasons)
    details = {"from": champion, "to": challenger, "server": answer, "deciding": decision.deciding}
    store.record_event(model, "promote", actor=actor, reason=reason, details=details, at=time.time())
    logger.info("model %s: promoted %s (was %s) by %s", model, challenger, champion, actor)
    return details


def history(store: LoopStore, model: str, limit: int = 100) -> list[dict[str, Any]]:
    return store.list_events(model, ("decision", "promote", "rollback"), limit=limit)


def champion_path(store: LoopStore, model: str) -> str | None:
    """The version the last promotion or rollback switched to (None: never switched by the loop)."""
    for event in store.list_events(model, ("promote", "rollback"), limit=1):
        return str(event["details"]["to"])
    return None


def rollback_target(store: LoopStore, model: str) -> dict[str, Any]:
    """The last promotion not yet undone: ``{"event", "current", "previous"}``, or a ShipyardError."""
    switches = store.list_events(model, ("promote", "rollback"), limit=10_000)
    pending_rollbacks = 0
    for event in switches:  # newest first: skip promotions already undone by later rollbacks
        if event["kind"] == "rollback":
            pending_rollbacks += 1
        elif pending_rollbacks:
            pending_rollbacks -= 1
        else:
            return {"event": event, "current": event["details"]["to"], "previous": event["details"]["from"]}
    raise ShipyardError(f"no promotion of {model!r} to roll back", where="rollback")


def rollback(
    store: LoopStore,
    model: str,
    *,
    actor: str,
    why: str,
    switch: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return to the version before the last promotion (each rollback undoes one more promotion)."""
    target = rollback_target(store, model)
    answer = switch(target["previous"]) if switch is not None else {}
    return record_rollback(store, model, target, actor=actor, why=why, answer=answer)


def record_rollback(
    store: LoopStore, model: str, target: dict[str, Any], *, actor: str, why: str, answer: dict[str, Any]
) -> dict[str, Any]:
    details = {"from": target["current"], "to": target["previous"], "server": answer, "undoes": target["event"]["id"]}
    store.record_event(model, "rollback", actor=actor, reason=why or "rollback", details=details, at=time.time())
    logger.info("model %s: rolled back to %s by %s", model, target["previous"], actor)
    return details
