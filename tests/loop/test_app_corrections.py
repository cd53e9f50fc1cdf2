"""submit_correction: how the apps push their users' corrections into the feedback store."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from shipyard.config.loop import LogPredictionsConfig
from shipyard.loop.feedback import APP_VERSION, FeedbackError, feedback_accuracy, labelled_rows, submit_correction
from shipyard.loop.predlog import PredictionLog
from shipyard.loop.store import LoopStore, feedback, predictions


def _counts(store):
    with store.connect() as conn:
        return tuple(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in (predictions, feedback)
        )


@pytest.fixture
def run_dir(tmp_path, make_model_meta):
    run = tmp_path / "runs" / "ticket-clf"
    make_model_meta(run / "model", labels=["billing", "bug", "other"])
    (run / "run.json").write_text(json.dumps({"run_id": "ticket-clf"}), encoding="utf-8")
    return run


def test_a_correction_without_a_prediction_id_is_stored_redacted_and_retrain_finds_it(run_dir):
    text = "my card was charged twice, write to jane.doe@example.com"
    row = submit_correction("tickets", {"text": text}, "billing", source="support", model_path=run_dir / "model")
    assert (row["label"], row["source"], row["logged"], row["correct"]) == ("billing", "support", False, None)
    store = LoopStore.open(run_dir.parent)  # found from the run folder by default
    assert _counts(store) == (1, 1)
    rows = labelled_rows(store, under=run_dir)  # what `shipyard retrain <run>` learns from
    assert list(rows["_target"]) == ["billing"] and list(rows["_version"]) == [APP_VERSION]
    assert "jane.doe@example.com" not in rows["text"][0] and "[EMAIL" in rows["text"][0]
    submit_correction("tickets", {"text": "crash on login"}, "bug", source="support", model_path=run_dir,
                      predicted="other")  # fmt: skip
    assert feedback_accuracy(store, "tickets") == (1, 0.0)  # only answers that say what the model said count


def test_a_correction_answers_the_logged_prediction_when_the_app_has_its_id(run_dir):
    store = LoopStore.open(run_dir.parent)
    log = PredictionLog(
        store, model="tickets", version=3, model_path=str(run_dir / "model"), config=LogPredictionsConfig()
    )
    out = {"label": "other", "probabilities": {"billing": 0.3, "bug": 0.1, "other": 0.6}}
    (pid,) = log.log([{"text": "refund please"}], [out])
    log.flush()
    row = submit_correction(
        "tickets", {"text": "ignored"}, "billing", source="support", model_path=run_dir, prediction_id=pid, store=store
    )
    assert (row["prediction_id"], row["logged"], row["correct"]) == (pid, True, False)
    assert _counts(store) == (1, 1)
    assert labelled_rows(store, "tickets")["text"][0] == "refund please"


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"label": "fraud"}, 422, "not one of the model's labels"),
        ({"source": "Support App"}, 422, "source must be"),
        ({"inputs": {}}, 422, "inputs must be"),
        ({"prediction_id": "dup"}, 409, "already has feedback"),
    ],
)
def test_bad_corrections_are_refused_and_nothing_is_written(run_dir, kwargs, status, message):
    store = LoopStore.open(run_dir.parent)
    submit_correction("tickets", {"text": "a"}, "bug", source="support", model_path=run_dir, prediction_id="dup")
    args = {"inputs": {"text": "b"}, "label": "bug", "source": "support", **kwargs}
    with pytest.raises(FeedbackError, match=message) as caught:
        submit_correction("tickets", args.pop("inputs"), args.pop("label"), model_path=run_dir, **args)
    assert caught.value.status == status
    assert _counts(store) == (1, 1)


def test_a_regression_model_takes_a_value(tmp_path, make_model_meta, store):
    model = make_model_meta(tmp_path / "reg", task="regression")
    row = submit_correction("spend", {"amount": 12.5}, 99.0, source="finmon", model_path=model, store=store)
    assert (row["kind"], row["value"], row["label"]) == ("value", 99.0, None)
    with pytest.raises(FeedbackError, match="must be a number"):
        submit_correction("spend", {"amount": 1.0}, "lots", source="finmon", model_path=model, store=store)
