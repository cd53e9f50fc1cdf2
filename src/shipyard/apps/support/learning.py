"""Support feedback into the continuous-learning loop: what customers confirm and agents correct becomes labelled
rows of the intent run, through the loop's one entry point for applications (`loop.feedback.submit_correction`).

- a customer's "helpful" on an answer: the customer's words labelled with the intent that answered them (the loop
  counts a thumbs-up as the predicted label);
- an agent's correction (``correct_intent``): the customer's words labelled with the agent's intent, the
  assistant's intent given as ``predicted`` (so the loop's accuracy on feedback counts the miss).

The rows land in the loop store of the runs folder that holds the intent run, redacted and with the assistant's
retention, where `shipyard retrain <intent run>` learns from them and `shipyard data forget` reaches them. A
"not helpful" alone names no label, so it stays in the assistant's store (it counts towards escalation). Without
an intent run (the intent is the vote of retrieved answers) there is no classifier to retrain: nothing is sent.
The retrieval model's query -> passage pairs go out through `shipyard app support export-feedback` (pairs.csv):
`shipyard retrain` does not retrain `task: retrieval` runs.
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
