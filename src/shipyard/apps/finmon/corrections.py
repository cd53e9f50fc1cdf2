"""Analysts' sentiment corrections: one per document, kept in the monitor's store and filed in the loop's feedback
store, where ``shipyard retrain <the model's run>`` picks them up as new training rows.

The loop answers each prediction once, so a document is corrected once: a second correction is refused (409) in
both stores alike. The loop's entry point (:func:`shipyard.loop.feedback.submit_correction`) checks the label
against the model's label set, redacts the text like the prediction log, keeps it ``retention_days`` and makes it
reachable by ``shipyard data forget``. The local row and the loop's row are written together: if the loop refuses,
the local transaction is rolled back, so the two never disagree.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shipyard.apps.finmon.config import FinmonConfig
from shipyard.apps.finmon.store import Store
from shipyard.errors import ShipyardError

SOURCE = "finmon"  # the feedback source name the loop files these under
LABELS = ("negative", "neutral", "positive")


class CorrectionError(ShipyardError):
    """A refused correction; ``status`` is the HTTP code the API answers with."""

    def __init__(self, message: str, *, status: int, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, where=where, hint=hint)
        self.status = status


def prediction_id(model_name: str, doc_id: str) -> str:
    """A stable 32-hex id for (model, document): the loop's key, so a replayed correction is a duplicate."""
    return hashlib.blake2b(f"{SOURCE}\0{model_name}\0{doc_id}".encode(), digest_size=16).hexdigest()


def run_folder(config: FinmonConfig) -> Path:
    """The model's run folder (the feedback is filed against the run, not its int8 copy)."""
    return config.resolve(config.model.run).resolve()


def text_feature(run: Path) -> str:
    """The name of the run's one text feature (the column a retrain reads the corrected text from)."""
    for meta in (run / "model" / "shipyard.json", run / "shipyard.json"):
        if meta.is_file():
            features = json.loads(meta.read_text(encoding="utf-8")).get("features", [])
            names = [f["name"] for f in features if f.get("type") == "text"]
            if len(names) == 1:
                return str(names[0])
            raise CorrectionError("the sentiment model must take exactly one text feature", status=500, where=str(meta))
    raise CorrectionError(
        "the model's run folder has no shipyard.json, so corrections cannot be filed for retraining",
        status=500,
        where=str(run),
        hint="model.run must name a run folder; or set corrections.loop: false to keep corrections locally only",
    )


def correct(store: Store, config: FinmonConfig, doc_id: str, label: str, actor: str | None = None) -> dict[str, Any]:
    """Record ``label`` as the right sentiment of document ``doc_id``; returns what was stored.

    Raises CorrectionError: 404 an unknown document, 422 a label outside negative / neutral / positive, 409 a
    document already corrected; the loop's FeedbackError (with its own status) when it refuses."""
    if label not in LABELS:
        raise CorrectionError(f"label must be one of {', '.join(LABELS)}, got {label!r}", status=422, where="label")
    document = store.document(doc_id)
    if document is None:
        raise CorrectionError(f"unknown document {doc_id!r}", status=404, where="document")
    settings = config.corrections
    filed: dict[str, Any] = {}

    def to_loop() -> None:  # runs inside the store's transaction: a refusal rolls the local row back
        from shipyard.loop.feedback import submit_correction

        run = run_folder(config)
        row = submit_correction(
            settings.model_name,
            {text_feature(run): document["text"]},
            label,
            source=SOURCE,
            model_path=run,
            prediction_id=prediction_id(settings.model_name, doc_id),
            predicted=document["label"],
            actor=actor,
            database_url=settings.database_url,
            retention_days=settings.retention_days,
        )
        filed.update(prediction_id=row["prediction_id"], model=row["model"])

    prior = store.add_correction(doc_id, label, then=to_loop if settings.loop else None)
    if prior is not None:
        raise CorrectionError(
            f"document {doc_id!r} was already corrected (as {prior!r})",
            status=409,
            where="document",
            hint="a document takes one correction: the loop keeps one answer per prediction",
        )
    return {"document": doc_id, "label": label, "predicted": document["label"], "loop": filed or None}
