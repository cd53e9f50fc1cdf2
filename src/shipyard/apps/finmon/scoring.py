"""Sentence-level sentiment through the platform's public artefact API, in micro-batches.

The model is a Financial PhraseBank run (labels negative / neutral / positive). Its optimised artefact under
``optimized/int8`` (or ``optimized/onnx``) is used when present: same predictions within the optimiser's checked
tolerance, a fraction of the CPU time. A sentence's score is p(positive) - p(negative) in [-1, 1]; a document's
score for an entity is the mean over the sentences that mention it (all sentences when none does).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from shipyard.apps.finmon.config import ModelSettings
from shipyard.apps.finmon.processing import Document, EntityLinker, sentences
from shipyard.artifact import Artifact
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)


class SentenceModel(Protocol):
    def __call__(self, texts: list[str]) -> np.ndarray:
        """An array of shape (n, 3): p(negative), p(neutral), p(positive)."""


def pick_artifact(run: Path, prefer: list[str]) -> Path:
    """The first of ``prefer`` that exists in the run: ``optimized/int8``, ``optimized/onnx`` or the run itself."""
    for choice in prefer:
        path = run if choice == "original" else run / "optimized" / choice
        if (path / "shipyard.json").is_file() or (path / "model" / "shipyard.json").is_file():
            return path
    raise ShipyardError("no model artefact found in the run", where=str(run), hint=f"looked for {prefer}")


class ArtifactModel:
    """A loaded artefact as a SentenceModel; the probabilities are reordered to negative, neutral, positive."""

    def __init__(self, settings: ModelSettings, base: Path) -> None:
        run = Path(settings.run) if Path(settings.run).is_absolute() else base / settings.run
        if settings.num_threads:
            import torch  # optional: only when the user pins the thread count

            torch.set_num_threads(settings.num_threads)
        self.path = pick_artifact(run, settings.prefer)
        self.artifact = Artifact.load(self.path)
        labels = [str(label).lower() for label in (self.artifact.labels or [])]
        missing = {"negative", "positive"} - set(labels)
        if missing:
            raise ShipyardError(f"the model's labels {labels} lack {sorted(missing)}", where=str(self.path))
        self.order = [labels.index("negative"), labels.index("neutral") if "neutral" in labels else -1,
                      labels.index("positive")]  # fmt: skip
        text_features = [f["name"] for f in self.artifact.features if f.get("type") == "text"]
        if len(text_features) != 1:
            raise ShipyardError("the sentiment model must take exactly one text feature", where=str(self.path))
        self.column = text_features[0]
        self.batch_size = settings.batch_size
        log.info("sentiment model: %s (%s backend)", self.path, self.artifact.backend)

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3), dtype=np.float32)
        # model calls of batch_size sentences of similar length: each call pads to its longest sentence, so
        # sorting by length first saves the model most of the padding a mixed batch would cost
        order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            frame = pd.DataFrame({self.column: [texts[i] for i in rows]})
            proba = self.artifact.predict_frame(frame)["probabilities"]
            for j, idx in enumerate(self.order):
                if idx >= 0:
                    out[rows, j] = proba[:, idx]
        return out


LABELS = ("negative", "neutral", "positive")


class Scorer:
    """Scores a micro-batch of documents; ``model_seconds`` adds up the time spent inside the model (profiling)."""

    def __init__(self, model: SentenceModel, linker: EntityLinker, max_sentences: int) -> None:
        self.model, self.linker, self.max_sentences = model, linker, max_sentences
        self.model_seconds = 0.0

    def score(self, docs: list[Document]) -> None:
        """Set ``score``, ``label`` and ``entity_scores`` of each document (in place)."""
        owners: list[int] = []
        texts: list[str] = []
        for i, doc in enumerate(docs):
            for sentence in sentences(doc.normalized or doc.text, self.max_sentences):
                owners.append(i)
                texts.append(sentence)
        started = time.perf_counter()
        proba = self.model(texts)
        self.model_seconds += time.perf_counter() - started
        values = proba[:, 2] - proba[:, 0]
        by_doc: dict[int, list[int]] = {}
        for row, owner in enumerate(owners):
            by_doc.setdefault(owner, []).append(row)
        for i, doc in enumerate(docs):
            rows = by_doc.get(i, [])
            if not rows:
                continue
            mean = proba[rows].mean(axis=0)
            doc.score = float(values[rows].mean())
            doc.label = LABELS[int(mean.argmax())]
            if len(rows) == 1:  # one sentence: it is the one every entity is scored on (no linking again)
                doc.entity_scores.update((entity, doc.score) for entity in doc.entities)
                continue
            found = {r: self.linker.mentions_in(texts[r]) for r in rows} if len(doc.entities) else {}
            for entity in doc.entities:
                mentioned = [r for r in rows if entity in found[r]]
                picked = mentioned or rows
                doc.entity_scores[entity] = float(values[picked].mean())
