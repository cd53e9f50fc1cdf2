"""Support feedback into the continuous-learning loop: what customers confirm and agents correct becomes labelled
rows of the intent run, through the loop's one entry point for applications (`loop.feedback.submit_correction`),
and query -> passage pairs of the retrieval run (`loop.pairs.submit_pair`).

- a customer's "helpful" on an answer: the customer's words labelled with the intent that answered them (the loop
  counts a thumbs-up as the predicted label);
- an agent's correction (``correct_intent``): the customer's words labelled with the agent's intent, the
  assistant's intent given as ``predicted`` (so the loop's accuracy on feedback counts the miss).

The rows land in the loop store of the runs folder that holds the intent run, redacted and with the assistant's
retention, where `shipyard retrain <intent run>` learns from them and `shipyard data forget` reaches them. A
"not helpful" alone names no label, so it stays in the assistant's store (it counts towards escalation). Without
an intent run (the intent is the vote of retrieved answers) there is no classifier to retrain: nothing is sent.

Pairs (:class:`PairLink`): a customer's "helpful" on an answer that showed a passage pairs the customer's words with
that passage; an agent's ``correct_passage_id`` pairs them with the agent's passage (the answered passage given as
``predicted``). They land in the loop store of the runs folder holding the retrieval run, redacted, with the
assistant's retention, filed under ``retrieval_name``; `shipyard retrain <retrieval run>` trains on them and
`shipyard data forget <retrieval run> --where "query == '...'"` reaches them. `export-feedback` still writes
both as CSV (from the assistant's own store) for a retrain outside the loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SOURCE = "support"


class LoopLink:
    """Sends intent labels for the intent run at ``run`` (served under ``model`` in the loop store)."""

    def __init__(self, run: Path, model: str, feature: str, *, retention_days: float) -> None:
        self.run, self.model, self.feature, self.retention_days = run, model, feature, retention_days

    def send(self, text: str, label: str, *, predicted: str | None, actor: str) -> dict[str, Any]:
        """One labelled row; a :class:`~shipyard.loop.feedback.FeedbackError` (an intent outside the run's label
        set, say) is raised before anything is written."""
        from shipyard.loop.feedback import submit_correction

        row = submit_correction(
            self.model,
            {self.feature: text},
            label,
            source=SOURCE,
            model_path=self.run,
            predicted=predicted,
            actor=actor,
            retention_days=self.retention_days,
        )
        log.info("support feedback for %s sent to the loop: %s (%s)", self.model, label, actor)
        return row

    def check(self, label: str) -> None:
        """Refuse an intent the run does not know before the assistant's own store records it."""
        from shipyard.loop.feedback import FeedbackError, model_meta

        labels = model_meta(str(self.run)).get("labels")
        if labels is not None and label not in labels:
            shown = ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else "")
            raise FeedbackError(
                f"correct_intent {label!r} is not one of the intent model's labels ({shown})",
                status=422,
                where=str(self.run),
            )


class PairLink:
    """Sends query -> passage pairs for the retrieval run at ``run`` (served under ``model`` in the loop store)."""

    def __init__(self, run: Path, model: str, *, retention_days: float) -> None:
        self.run, self.model, self.retention_days = run, model, retention_days

    def send(self, query: str, passage_id: int, *, predicted: int | None, actor: str) -> dict[str, Any]:
        """One pair; a :class:`~shipyard.loop.feedback.FeedbackError` (a passage the run does not have, say) is
        raised before anything is written."""
        from shipyard.loop.pairs import submit_pair

        row = submit_pair(
            self.model,
            query,
            passage_id,
            source=SOURCE,
            model_path=self.run,
            predicted=predicted,
            actor=actor,
            retention_days=self.retention_days,
        )
        log.info("support pair for %s sent to the loop: passage %s (%s)", self.model, passage_id, actor)
        return row

    def check(self, passage_id: int) -> None:
        """Refuse a passage the run's index does not hold before the assistant's own store records it."""
        from shipyard.loop.feedback import FeedbackError
        from shipyard.loop.pairs import passage_collection

        if int(passage_id) not in passage_collection(self.run):
            raise FeedbackError(
                f"correct_passage_id {passage_id} is not a passage of the retrieval model",
                status=422,
                where=str(self.run),
            )
