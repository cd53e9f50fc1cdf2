"""`shipyard retrain RUN` for a retrieval run: query -> passage pairs sent through the loop (redacted, erasable,
expiring) train a challenger on the parent's training pairs plus the feedback, tested on the parent's own held-out
queries and linked to its parent; a pair naming a passage the run does not have is refused, by name."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "retrieval"))
from retrieval_helpers import tiny_run

from shipyard.config.loop import PromotionConfig
from shipyard.errors import ShipyardError
from shipyard.loop.compare_retrieval import compare_for_promotion
from shipyard.loop.erasure import forget_predictions
from shipyard.loop.feedback import FeedbackError
from shipyard.loop.pairs import feedback_pairs, passage_collection, submit_pair
from shipyard.loop.predlog import purge_expired
from shipyard.loop.retrain import retrain
from shipyard.loop.store import LoopStore, feedback
from shipyard.store.runs import RunStore


@pytest.fixture
def parent(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A copy of the session's tiny retrieval run in a runs folder of its own (its loop store is this test's)."""
    run = Path(shutil.copytree(tiny_run(tmp_path_factory.mktemp("retrieval_run")), tmp_path / "runs" / "faq"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["training"].update(max_steps=1, batch_size=8)  # the retrain's job is the parent's: keep it to one step
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def _passage_of(parent: Path, group: str) -> int:
    return next(pid for pid, p in passage_collection(parent).items() if p["group"] == group)


def test_feedback_pairs_reach_the_retrain_and_the_new_run_is_linked(parent: Path) -> None:
    store = LoopStore.open(parent.parent)
    refund, password = _passage_of(parent, "get_refund"), _passage_of(parent, "recover_password")
    test_query = pd.read_parquet(parent / "splits" / "test.parquet")["query"].iloc[0]
    submit_pair("faq", "my money back for the broken lamp please, jane@example.com", refund, source="support",
                model_path=parent, predicted=password)  # fmt: skip
    submit_pair("faq", "cannot log in anymore, new password?", password, source="support", model_path=parent)
    submit_pair("faq", test_query, password, source="support", model_path=parent)  # a held-out query: left out
    stored = feedback_pairs(store, under=parent)
    assert len(stored) == 3 and "jane@example.com" not in stored["query"][0]  # redacted before it was stored

    result = retrain(parent, store=store, with_feedback=True)
    assert result["pairs"] == {"pairs": 3, "used": 2, "same_as_held_out_query": 1, "held_out_group": 0}
    child = Path(result["run_dir"])
    train = pd.read_parquet(child / "splits" / "train.parquet")
    parent_train = pd.read_parquet(parent / "splits" / "train.parquet")
    assert len(train) == len(parent_train) + 2
    added = train[~train["query"].isin(parent_train["query"])]
    assert sorted(added["group"]) == ["get_refund", "recover_password"]
    assert not added["query"].str.contains("jane@example.com").any()
    for split in ("validation", "test"):  # evaluated on exactly the parent's held-out queries
        ours = pd.read_parquet(child / "splits" / f"{split}.parquet")
        theirs = pd.read_parquet(parent / "splits" / f"{split}.parquet")
        assert sorted(ours["query"]) == sorted(theirs["query"])
    before, after = passage_collection(parent), passage_collection(child)
    assert all(after[pid]["text"] == before[pid]["text"] for pid in before)  # same passage ids as the parent's
    flags = RunStore.for_root(child.parent).get(result["run_id"]).flags
    assert flags["parent"] == result["parent"] and int(flags["feedback_rows"]) == 2
    test = result["metrics"]["test"]
    assert test["queries"] == len(pd.read_parquet(parent / "splits" / "test.parquet")) and 0 <= test["recall@1"] <= 1

    # `shipyard promote` compares the two by MRR@10 on the parent's held-out queries (paired bootstrap)
    decision = compare_for_promotion(store, "faq", parent / "model", child / "model", PromotionConfig(bootstrap=200))
    [holdout] = decision.slices  # no pair arrived after the challenger's cut-off: no feedback slice
    assert (holdout.name, holdout.metric, holdout.n, holdout.test) == ("holdout", "mrr@10", test["queries"],
                                                                        "paired_bootstrap")  # fmt: skip
    parent_test = json.loads((parent / "metrics.json").read_text())["test"]
    assert holdout.champion == pytest.approx(parent_test["mrr@10"]) and holdout.challenger == pytest.approx(
        test["mrr@10"]
    )
    assert holdout.detail["recall@1"]["champion"] == pytest.approx(parent_test["recall@1"])

    # the pairs are erasable and expire like every logged input
    removed = forget_predictions(store, "query == 'cannot log in anymore, new password?'", under=parent)
    assert removed["removed"]["feedback"] == 1 and len(feedback_pairs(store, under=parent)) == 2
    assert purge_expired(store, now=1e12) == 2 and feedback_pairs(store, under=parent).empty


def test_a_pair_naming_a_missing_passage_is_refused_by_name(parent: Path) -> None:
    store = LoopStore.open(parent.parent)
    with pytest.raises(FeedbackError, match="passage 99999 is not in the retrieval model's collection"):
        submit_pair("faq", "where is my parcel", 99999, source="support", model_path=parent)
    assert feedback_pairs(store, under=parent).empty  # nothing written
    row = submit_pair("faq", "where is my parcel", _passage_of(parent, "track_order"), source="support",
                      model_path=parent)  # fmt: skip
    with store.begin() as conn:  # the passage was deleted from the index since the pair was sent
        conn.execute(feedback.update().where(feedback.c.prediction_id == row["prediction_id"]).values(label="99999"))
    runs_before = sorted(p.name for p in parent.parent.iterdir())
    with pytest.raises(ShipyardError, match=rf"pair {row['prediction_id']} names passage '99999'") as caught:
        retrain(parent, store=store, with_feedback=True)
    assert "prediction_id ==" in (caught.value.hint or "")
    assert sorted(p.name for p in parent.parent.iterdir()) == runs_before  # no run was started
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(feedback)).scalar() == 1


def test_data_forget_reaches_a_retrieval_runs_splits_and_its_pairs(parent: Path) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.root import app

    store = LoopStore.open(parent.parent)
    queries = pd.read_parquet(parent / "splits" / "train.parquet")["query"]
    query = next(q for q in queries if "'" not in q and "\\" not in q)
    submit_pair("faq", query, _passage_of(parent, "track_order"), source="support", model_path=parent)
    result = CliRunner().invoke(app, ["data", "forget", str(parent), "--where", f"query == '{query}'"])
    assert result.exit_code == 0, result.output
    assert query not in set(pd.read_parquet(parent / "splits" / "train.parquet")["query"])
    assert feedback_pairs(store, under=parent).empty
