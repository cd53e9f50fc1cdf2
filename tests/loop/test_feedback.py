"""Feedback: checked against the label set; unknown ids, outside labels and duplicates are refused unwritten."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shipyard.config.loop import LogPredictionsConfig
from shipyard.errors import ShipyardError
from shipyard.loop.feedback import (
    FeedbackError,
    FeedbackItem,
    feedback_accuracy,
    import_feedback_csv,
    labelled_rows,
    record_feedback,
)
from shipyard.loop.predlog import PredictionLog
from shipyard.loop.store import feedback


def _log(store, model_dir, n=4, model="m"):
    log = PredictionLog(store, model=model, version=1, model_path=str(model_dir), config=LogPredictionsConfig())
    out = [{"label": "pos", "probabilities": {"neg": 0.2, "pos": 0.8}}] * n
    ids = log.log([{"x": float(i), "city": "Oslo"} for i in range(n)], out)
    log.flush()
    return ids


def _count(store):
    with store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(feedback)).scalar_one()


def test_label_thumbs_and_rating_are_stored(store, model_dir):
    ids = _log(store, model_dir)
    record_feedback(store, FeedbackItem(ids[0], label="neg"), actor="t")
    record_feedback(store, FeedbackItem(ids[1], thumbs="up"), actor="t")
    record_feedback(store, FeedbackItem(ids[2], thumbs="down", correction="neg"), actor="t")
    record_feedback(store, FeedbackItem(ids[3], rating=4), actor="t")
    n, accuracy = feedback_accuracy(store, "m")
    assert (n, accuracy) == (3, pytest.approx(1 / 3))
    rows = labelled_rows(store, "m")
    assert sorted(rows["_target"]) == ["neg", "neg", "pos"]
    assert set(rows.columns) >= {"x", "city", "_target", "_correct"}


@pytest.mark.parametrize(
    ("item", "status", "message"),
    [
        (FeedbackItem("0" * 32, label="pos"), 404, "unknown prediction id"),
        (None, 422, "not one of the model's labels"),
        (None, 409, "already has feedback"),
        (None, 422, "exactly one of"),
        (None, 422, "thumbs must be"),
        (None, 422, "rating must be"),
    ],
)
def test_bad_feedback_is_refused_and_nothing_is_written(store, model_dir, item, status, message):
    ids = _log(store, model_dir)
    record_feedback(store, FeedbackItem(ids[0], label="pos"), actor="t")
    before = _count(store)
    item = (
        item
        or {
            "not one of the model's labels": FeedbackItem(ids[1], label="maybe"),
            "already has feedback": FeedbackItem(ids[0], label="neg"),
            "exactly one of": FeedbackItem(ids[1], label="pos", rating=3),
            "thumbs must be": FeedbackItem(ids[1], thumbs="sideways"),
            "rating must be": FeedbackItem(ids[1], rating=9),
        }[message]
    )
    with pytest.raises(FeedbackError, match=message) as info:
        record_feedback(store, item, actor="t")
    assert info.value.status == status
    assert _count(store) == before


def test_a_regression_model_takes_values_not_labels(store, tmp_path, make_model_meta):
    folder = make_model_meta(tmp_path / "reg", task="regression", labels=None)
    log = PredictionLog(store, model="r", version=1, model_path=str(folder), config=LogPredictionsConfig())
    ids = log.log([{"x": 1.0}, {"x": 2.0}], [{"value": 3.5}, {"value": 1.0}])
    log.flush()
    record_feedback(store, FeedbackItem(ids[0], value=3.0), actor="t")
    with pytest.raises(FeedbackError, match="send `value`"):
        record_feedback(store, FeedbackItem(ids[1], label="3"), actor="t")
    record_feedback(store, FeedbackItem(ids[1], thumbs="up"), actor="t")
    assert sorted(labelled_rows(store, "r")["_target"]) == [1.0, 3.0]


def test_csv_import_is_all_or_nothing_and_names_the_bad_rows(store, model_dir, tmp_path):
    ids = _log(store, model_dir)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"prediction_id,label\n{ids[0]},pos\n{ids[1]},maybe\n{'f' * 32},neg\n{ids[0]},neg\n",
        encoding="utf-8",
    )
    with pytest.raises(ShipyardError) as info:
        import_feedback_csv(store, bad, actor="t")
    text = str(info.value)
    assert "3 bad row(s)" in text and "row 3" in text and "row 4" in text and "row 5" in text
    assert "answered twice (also row 2)" in text
    assert _count(store) == 0
    good = tmp_path / "good.csv"
    good.write_text(f"prediction_id,label\n{ids[0]},pos\n{ids[1]},neg\n", encoding="utf-8")
    assert import_feedback_csv(store, good, actor="t") == {"imported": 2, "by_model": {"m": 2}}
    header = tmp_path / "header.csv"
    header.write_text("id,truth\nx,y\n", encoding="utf-8")
    with pytest.raises(ShipyardError, match="header must name prediction_id"):
        import_feedback_csv(store, header, actor="t")
