"""One monitoring check of a served model: input drift, prediction drift and accuracy on arrived feedback.

The reference is the model's own training rows (``splits/train.parquet`` of the run the model came from) and the
model's predictions on them; the current sample is what the prediction log holds for the window. Fewer than
``thresholds.min_rows`` logged rows give the verdict ``insufficient`` and no alert. Each check is recorded as a
``drift_check`` event (the dashboard charts them); alerts as ``alert`` events, and through the :class:`AlertSink`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from shipyard.config.loop import DriftThresholds
from shipyard.errors import ShipyardError
from shipyard.loop.drift import FeatureDrift, compare_frames, prediction_drift
from shipyard.loop.feedback import APP_VERSION, feedback_accuracy
from shipyard.loop.predlog import load_predictions
from shipyard.loop.store import LoopStore, predictions

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 5000
REFERENCE_PREDICTIONS = 1000


@dataclass
class Reference:
    frame: pd.DataFrame
    predictions: pd.Series
    features: list[dict[str, str]]
    task: str
    test_accuracy: float | None


@dataclass
class DriftReport:
    model: str
    at: float
    window_s: float
    n_reference: int
    n_current: int
    status: str  # ok | drift | insufficient
    features: list[FeatureDrift] = field(default_factory=list)
    prediction: FeatureDrift | None = None
    feedback: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "at": self.at,
            "window_s": self.window_s,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "status": self.status,
            "features": [f.as_dict() for f in self.features],
            "prediction": self.prediction.as_dict() if self.prediction else None,
            "feedback": self.feedback,
            "alerts": self.alerts,
        }


def run_folder_of(model_path: str | Path) -> Path:
    """The run folder a model folder belongs to (``<run>/model`` or ``<run>/optimized/<m>``), or the path itself."""
    path = Path(model_path)
    if (path / "splits").is_dir():
        return path
    for parent in (path.parent, path.parent.parent):
        if (parent / "splits").is_dir():
            return parent
    raise ShipyardError(
        "no stored training rows to compare the traffic with (no splits/ beside the model)",
        where=str(path),
        hint="serve a model from a tabular or text run folder; image runs keep no splits",
    )


_references: dict[str, Reference] = {}
_references_lock = threading.Lock()


def load_reference(model_path: str | Path, *, seed: int = 0) -> Reference:
    """The training rows (a sample) and the model's predictions on them; cached per model folder."""
    from shipyard.artifact import Artifact  # heavy (torch): only when a check runs

    key = str(Path(model_path).resolve())
    with _references_lock:
        if key in _references:
            return _references[key]
    run_dir = run_folder_of(model_path)
    frame = pd.read_parquet(run_dir / "splits" / "train.parquet")
    if len(frame) > REFERENCE_ROWS:
        frame = frame.sample(n=REFERENCE_ROWS, random_state=seed)
    artifact = Artifact.load(model_path)
    scored = frame.head(REFERENCE_PREDICTIONS)
    outputs = artifact.predict_frame(scored)
    if artifact.task == "classification":
        preds = pd.Series(outputs["label"], dtype=str)
    else:
        preds = pd.Series(outputs["value"], dtype=float)
    metrics = artifact.meta.get("metrics") or {}
    test = metrics.get("test", metrics) if isinstance(metrics, dict) else {}
    reference = Reference(frame, preds, artifact.features, artifact.task, test.get("accuracy"))
    with _references_lock:
        _references[key] = reference
    return reference


def latest_model_path(store: LoopStore, model: str) -> str:
    query = sa.select(predictions.c.model_path).where(predictions.c.model == model).order_by(predictions.c.at.desc())
    with store.connect() as conn:
        row = conn.execute(query.limit(1)).first()
    if row is None:
        raise ShipyardError(f"no logged predictions for model {model!r}", where="prediction log")
    return str(row[0])


def check_model(
    store: LoopStore,
    model: str,
    *,
    window_s: float,
    thresholds: DriftThresholds,
    model_path: str | None = None,
    now: float | None = None,
    embed: Any = None,
) -> DriftReport:
    """Compare the window's logged traffic with the reference; nothing is recorded (see :func:`run_check`)."""
    now = time.time() if now is None else now
    model_path = model_path or latest_model_path(store, model)
    reference = load_reference(model_path)
    current = load_predictions(store, model, since=now - window_s, until=now + 1e-6)
    if len(current):  # inputs an application recorded with its users' corrections are not served traffic
        current = current[current["_version"] != APP_VERSION].reset_index(drop=True)
    n_fb, accuracy = feedback_accuracy(store, model, since=now - window_s, until=now + 1e-6)
    report = DriftReport(model, now, window_s, len(reference.frame), len(current), "insufficient")
    report.feedback = {"n": n_fb, "accuracy": accuracy, "reference": reference.test_accuracy}
    if (
        accuracy is not None
        and reference.test_accuracy is not None
        and n_fb >= thresholds.min_feedback
        and accuracy < reference.test_accuracy - thresholds.accuracy_drop
    ):
        report.alerts.append(
            {
                "kind": "accuracy",
                "message": f"accuracy on {n_fb} feedback rows is {accuracy:.3f}, "
                f"below the test accuracy {reference.test_accuracy:.3f} by more than {thresholds.accuracy_drop}",
            }
        )
    if len(current) < thresholds.min_rows:
        return report
    report.features = compare_frames(reference.frame, current, reference.features, thresholds, embed=embed)
    if reference.task == "classification":
        cur_preds = current["_label"].astype(str)
    else:
        cur_preds = pd.Series([o.get("value") for o in current["_outputs"]], dtype=float)
    report.prediction = prediction_drift(reference.predictions, cur_preds, reference.task, thresholds)
    drifted = [f.name for f in report.features if f.drifted]
    if drifted:
        report.alerts.append(
            {"kind": "input_drift", "message": f"input drift in {', '.join(drifted)} ({len(current)} logged rows)"}
        )
    if report.prediction.drifted:
        report.alerts.append(
            {"kind": "prediction_drift", "message": f"prediction drift: PSI {report.prediction.psi:.3f}"}
        )
    report.status = "drift" if any(a["kind"] != "accuracy" for a in report.alerts) else "ok"
    return report


def run_check(
    store: LoopStore,
    model: str,
    *,
    window_s: float,
    thresholds: DriftThresholds,
    sink: Any = None,
    actor: str = "monitor",
    **kwargs: Any,
) -> DriftReport:
    """:func:`check_model`, then record it (and its alerts) in the store and publish it to ``sink``."""
    report = check_model(store, model, window_s=window_s, thresholds=thresholds, **kwargs)
    summary = json.loads(json.dumps(report.summary(), default=float))
    store.record_event(model, "drift_check", actor=actor, reason=report.status, details=summary, at=report.at)
    for alert in report.alerts:
        store.record_event(model, "alert", actor=actor, reason=alert["message"], details=alert, at=report.at)
    if sink is not None:
        sink.observe(report)
    return report
