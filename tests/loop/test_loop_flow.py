"""The loop on a real model: Adult under-40 served, then the whole population; queue, retrain, compare, promote."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from shipyard.artifact import Artifact
from shipyard.config.loop import DriftThresholds, LogPredictionsConfig, PromotionConfig
from shipyard.errors import ShipyardError
from shipyard.loop.alerts import AlertSink
from shipyard.loop.compare import compare_models
from shipyard.loop.erasure import forget_predictions
from shipyard.loop.feedback import FeedbackItem, labelled_rows, record_feedback, submit_correction
from shipyard.loop.monitor import run_check
from shipyard.loop.predlog import PredictionLog, load_predictions
from shipyard.loop.queue import (
    build_queue,
    export_csv,
    import_csv,
    label_item,
    labelled_count,
    queued_items,
    skip_item,
    undo_item,
)
from shipyard.loop.retrain import retrain
from shipyard.loop.versions import champion_path, history, promote, rollback

FEATURES = [
    "age",
    "workclass",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
]


def _serve(store, run_dir, frame, *, model="adult", version=1):
    """What the server does per request: predict, then log inputs and outputs (no network needed here)."""
    artifact = Artifact.load(run_dir)
    records = frame[FEATURES].to_dict("records")
    outputs = artifact.predict_records(records)
    log = PredictionLog(
        store,
        model=model,
        version=version,
        model_path=str(run_dir / "model"),
        config=LogPredictionsConfig(batch_size=500),
    )
    ids = log.log(records, outputs)
    log.close()
    return ids, outputs


def test_drift_alert_only_after_the_population_shifts(store, adult_young_run, adult_frame):
    young = adult_frame[adult_frame["age"] < 40].sample(n=600, random_state=5)
    everyone = adult_frame.sample(n=600, random_state=6)
    thresholds = DriftThresholds(min_rows=200)
    sink = AlertSink()
    _serve(store, adult_young_run, young)
    older = adult_frame[adult_frame["age"] >= 50].head(300)  # corrections an app recorded: not served traffic
    for record, truth in zip(older[FEATURES].to_dict("records"), older["Y"], strict=True):
        submit_correction("adult", record, truth, source="support", model_path=adult_young_run, store=store)
    calm = run_check(store, "adult", window_s=3600, thresholds=thresholds, sink=sink)
    assert calm.status == "ok" and not calm.alerts and calm.n_current == 600, calm.summary()
    _serve(store, adult_young_run, everyone)
    with store.connect() as conn:  # the window: only the newest 600 rows (the shifted traffic)
        conn.exec_driver_sql(
            "UPDATE loop_predictions SET at = at - 7200 WHERE id IN "
            "(SELECT id FROM loop_predictions ORDER BY at LIMIT 600)"
        )
        conn.commit()
    drifted = run_check(store, "adult", window_s=3600, thresholds=thresholds, sink=sink)
    assert drifted.status == "drift"
    names = {f.name for f in drifted.features if f.drifted}
    assert "age" in names
    assert sink.registry.get_sample_value("shipyard_alerts_total", {"model": "adult", "kind": "input_drift"}) == 1
    assert sink.registry.get_sample_value("shipyard_drift_detected", {"model": "adult"}) == 1.0
    kinds = [e["kind"] for e in store.list_events("adult")]
    assert kinds.count("drift_check") == 2 and "alert" in kinds


def test_queue_prefers_uncertain_and_diverse_inputs_and_round_trips_csv(store, adult_young_run, adult_frame, tmp_path):
    traffic = adult_frame.sample(n=400, random_state=7)
    _serve(store, adult_young_run, traffic)
    picked = build_queue(store, "adult", 20)
    assert len(picked) == 20 and picked["_id"].is_unique
    logged = load_predictions(store, "adult")
    assert picked["_margin"].mean() < logged["_margin"].mean()  # less sure than the traffic on average
    items = queued_items(store, "adult")
    assert list(items["_rank"]) == list(range(1, 21))
    first, second = items["_id"].iloc[0], items["_id"].iloc[1]
    label_item(store, "adult", first, ">50K", actor="t")
    skip_item(store, "adult", second)
    undo_item(store, "adult", first)  # the label is withdrawn, the item is back in the queue
    assert labelled_rows(store, "adult").empty
    assert len(queued_items(store, "adult")) == 19  # the skipped one is out
    path = tmp_path / "queue.csv"
    assert export_csv(store, "adult", path) == 19
    assert (path.stat().st_mode & 0o077) == 0
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[:4, "label"] = ["<=50K", ">50K", "<=50K", "<=50K", ">50K"]
    frame.loc[6, "label"] = "rich"
    frame.to_csv(path, index=False)
    with pytest.raises(ShipyardError, match=r"row 8: label 'rich' is not one of"):
        import_csv(store, "adult", path, actor="t")
    frame.loc[6, "label"] = ""
    frame.to_csv(path, index=False)
    assert import_csv(store, "adult", path, actor="t")["imported"] == 5
    assert len(labelled_rows(store, "adult")) == 5 and len(queued_items(store, "adult")) == 14


def test_shift_aware_strategies_through_the_real_queue(store, adult_young_run, adult_frame):
    _serve(store, adult_young_run, adult_frame.sample(n=200, random_state=3))
    badge = build_queue(store, "adult", 10, strategy="badge")
    assert len(badge) == 10 and badge["_id"].is_unique
    assert labelled_count(store, "adult") == 0
    cold = build_queue(store, "adult", 10, strategy="cold_start")  # no labels yet: typical picks, none re-queued
    assert len(cold) == 10 and not set(cold["_id"]) & set(badge["_id"])
    label_item(store, "adult", cold["_id"].iloc[0], ">50K", actor="t")
    assert labelled_count(store, "adult") == 1


def test_retrain_compare_promote_and_rollback(store, adult_young_run, adult_frame):
    older = adult_frame[adult_frame["age"] >= 40].sample(n=700, random_state=8)
    ids, _ = _serve(store, adult_young_run, older)
    for pid, truth in zip(ids, older["Y"], strict=True):
        record_feedback(store, FeedbackItem(pid, label=truth), actor="labeller")
    result = retrain(adult_young_run, store=store, with_feedback=True)
    assert result["feedback_rows"] == 700
    from shipyard.store.runs import RunStore

    record = RunStore.for_root(adult_young_run.parent).get(result["run_id"])
    assert record.flags["parent"] == json.loads((adult_young_run / "run.json").read_text())["run_id"]
    child = pd.read_parquet(f"{result['run_dir']}/splits/test.parquet")
    assert child.equals(pd.read_parquet(adult_young_run / "splits" / "test.parquet"))  # the same fixed holdout
    assert not list((adult_young_run.parent / ".retrain").glob("*"))  # staged sources removed

    # fresh feedback from the new population arrives after the retrain: the deciding slice
    later = adult_frame[adult_frame["age"] >= 40].drop(older.index).sample(n=600, random_state=9)
    ids, _ = _serve(store, adult_young_run, later)
    for pid, truth in zip(ids, later["Y"], strict=True):
        record_feedback(store, FeedbackItem(pid, label=truth), actor="labeller")
    champion, challenger = Artifact.load(adult_young_run), Artifact.load(result["run_dir"])
    holdout = pd.read_parquet(adult_young_run / "splits" / "test.parquet")
    fresh = labelled_rows(store, "adult", since=result["feedback_until"] + 1e-6)
    assert len(fresh) == 600
    cfg = PromotionConfig(margin=0.0, holdout_tolerance=0.05, min_feedback=100)
    decision = compare_models(champion, challenger, holdout=holdout, feedback_rows=fresh, cfg=cfg)
    assert decision.deciding == "feedback"
    slices = {s.name: s for s in decision.slices}
    assert slices["feedback"].diff > 0, decision.reasons
    if decision.promote:
        promote(
            store,
            "adult",
            champion=str(adult_young_run),
            challenger=result["run_dir"],
            decision=decision,
            actor="ops",
            why="feedback slice",
        )
        assert champion_path(store, "adult") == result["run_dir"]
        back = rollback(store, "adult", actor="ops", why="test")
        assert back["to"] == str(adult_young_run) and champion_path(store, "adult") == str(adult_young_run)
        with pytest.raises(ShipyardError, match="no promotion"):
            rollback(store, "adult", actor="ops", why="again")
    # the champion against itself is never promoted, and the decision is recorded
    same = compare_models(champion, champion, holdout=holdout, feedback_rows=fresh, cfg=cfg)
    assert not same.promote
    with pytest.raises(ShipyardError, match="not promoted"):
        promote(
            store, "adult", champion=str(adult_young_run), challenger=str(adult_young_run), decision=same, actor="ops"
        )
    assert history(store, "adult")[0]["kind"] == "decision"


def test_a_broken_retrain_never_replaces_the_champion(store, adult_young_run, adult_frame, tmp_path):
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "config.yaml").write_text((adult_young_run / "config.yaml").read_text())
    (broken / "splits").mkdir()
    for split in ("train", "validation"):  # the test split is gone: the retrain must fail before any switch
        (broken / "splits" / f"{split}.parquet").write_bytes(
            (adult_young_run / "splits" / f"{split}.parquet").read_bytes()
        )
    with pytest.raises(ShipyardError, match="keeps no test split"):
        retrain(broken, store=store, with_feedback=False)
    assert champion_path(store, "adult") is None
    assert not [e for e in history(store, "adult") if e["kind"] == "promote"]


def test_erasure_reaches_the_prediction_log(store, adult_young_run, adult_frame, tmp_path):
    traffic = adult_frame.sample(n=50, random_state=10)
    ids, _ = _serve(store, adult_young_run, traffic)
    record_feedback(store, FeedbackItem(ids[0], label="<=50K"), actor="t")
    target_age = int(traffic["age"].iloc[0])
    expected = int((traffic["age"] == target_age).sum())
    result = forget_predictions(store, f"age == {target_age}", under=adult_young_run)
    assert result["removed"]["predictions"] == expected and result["removed"]["feedback"] == 1
    left = load_predictions(store, "adult")
    assert len(left) == 50 - expected and target_age not in set(left["age"])
    one = forget_predictions(store, f"prediction_id == '{left['_id'].iloc[0]}'")
    assert one["removed"]["predictions"] == 1
    with pytest.raises(ShipyardError, match="no logged input has the column"):
        forget_predictions(store, "user_id == 3", under=adult_young_run)
