"""Erasure requests and the model card's privacy / personal-data / fairness sections."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rai_support import job_dict
from typer.testing import CliRunner

import shipyard
from shipyard.config.schema import Job
from shipyard.data.forget import forget
from shipyard.errors import ShipyardError
from shipyard.store.audit import AuditLog
from shipyard.store.runs import RunStore


def test_forget_removes_rows_marks_run_and_audits(plain_run: Any) -> None:
    run_dir = plain_run.run_dir
    before = {s: pd.read_parquet(run_dir / "splits" / f"{s}.parquet") for s in ("train", "validation", "test")}
    expected = {s: int((f["x1"] > 1.2).sum()) for s, f in before.items()}
    kept_card = (run_dir / "model_card.md").read_text()
    result = forget(run_dir, "x1 > 1.2 and c != 'zzz'")
    assert result["by_split"] == expected and result["rows_removed"] == sum(expected.values()) > 0
    for s, f in before.items():
        after = pd.read_parquet(run_dir / "splits" / f"{s}.parquet")
        assert len(after) == len(f) - expected[s] and not (after["x1"] > 1.2).any()
    assert not list((run_dir / "splits").glob("*.tmp"))
    record = RunStore.for_root(run_dir.parent).get(run_dir.name)
    assert record.flags["needs_retraining"]["rows_removed"] == result["rows_removed"]
    entries = AuditLog.for_root(run_dir.parent).entries(run_dir.name, action="data.forget")
    assert entries and entries[-1].details["rows_removed"] == result["rows_removed"]
    assert "1.2" not in json.dumps(entries[-1].details) and "zzz" not in json.dumps(entries[-1].details)
    assert entries[-1].details["columns"] == ["c", "x1"]
    assert (run_dir / "model_card.md").read_text() == kept_card


@pytest.mark.parametrize("where", ["x1 >", "no_such_column == 3", "x1 + 1", "@secret == 1", "  "])
def test_forget_bad_expression_is_a_clear_error(plain_run: Any, where: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(plain_run.run_dir / "splits", copy / "splits")
    with pytest.raises(ShipyardError) as err:
        forget(copy, where)
    assert "--where" in str(err.value)


def test_model_card_sections(plain_run: Any, dp_run: Any) -> None:
    plain = (plain_run.run_dir / "model_card.md").read_text()
    assert "**Guarantee: none.**" in plain
    personal = plain.split("## Personal data")[1].split("##")[0]
    assert "email" in personal and "rows_affected" in personal and "jane.doe" not in plain
    fairness = plain.split("## Fairness")[1].split("## ")[0]
    assert "demographic parity difference" in fairness and "mitigation" in fairness
    dp = (dp_run.run_dir / "model_card.md").read_text()
    eps = dp_run.metrics["privacy"]["epsilon"]
    assert "Differentially private training" in dp and f"ε = {eps}" in dp
    summary = json.loads((plain_run.run_dir / "data_summary.json").read_text())
    assert summary["pii"]["source"]["counts"]["note"]["email"] > 0


# ------------------------------------------------------------------------------------------------ data.id_column


@pytest.fixture(scope="module")
def id_run(synth_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`user_id` is the id column and nothing else keeps it out of the features (it is not in drop_columns)."""
    raw = job_dict(synth_csv)
    raw["data"]["drop_columns"] = ["note", "group"]
    raw["data"]["id_column"] = "user_id"
    raw["training"]["epochs"] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shipyard.run(Job.model_validate(raw), run_dir=tmp_path_factory.mktemp("rai_id") / "id_run")


def test_id_column_is_stored_but_never_a_model_input(id_run: Any) -> None:
    from shipyard.artifact import Artifact

    art = Artifact.load(id_run.run_dir)
    assert "user_id" not in art.preprocessor.features and "x1" in art.preprocessor.features
    card = json.loads((id_run.run_dir / "model" / "shipyard.json").read_text())
    assert "user_id" not in json.dumps(card["features"])
    ids = [
        pd.read_parquet(id_run.run_dir / "splits" / f"{s}.parquet")["user_id"] for s in ("train", "validation", "test")
    ]
    assert sum(len(i) for i in ids) == 1500 and len(set().union(*map(set, ids))) == 1500  # each row keeps its id


def test_forget_matches_an_id_column_that_is_not_a_feature(id_run: Any) -> None:
    from shipyard.cli import app

    run_dir = id_run.run_dir
    train = pd.read_parquet(run_dir / "splits" / "train.parquet")
    test = pd.read_parquet(run_dir / "splits" / "test.parquet")
    one, other = int(train["user_id"].iloc[3]), int(test["user_id"].iloc[0])
    res = CliRunner().invoke(
        app, ["data", "forget", str(run_dir), "--where", f"user_id == {one} or user_id == {other}"]
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["rows_removed"] == 2 and result["by_split"] == {"train": 1, "validation": 0, "test": 1}
    assert result["columns"] == ["user_id"] and result["marked_needs_retraining"] is True
    for split, before in (("train", train), ("test", test)):
        after = pd.read_parquet(run_dir / "splits" / f"{split}.parquet")
        assert len(after) == len(before) - 1 and not after["user_id"].isin([one, other]).any()
        assert list(after.columns) == list(before.columns)
    flags = RunStore.for_root(run_dir.parent).get(run_dir.name).flags
    assert flags["needs_retraining"]["rows_removed"] == 2
    entry = AuditLog.for_root(run_dir.parent).entries(run_dir.name, action="data.forget")[-1]
    assert entry.details["columns"] == ["user_id"] and entry.details["by_split"]["train"] == 1
    assert str(one) not in json.dumps(entry.details)  # counts and column names only, never the ids asked for


def test_forget_unknown_column_names_it_and_the_available_ones(plain_run: Any, tmp_path: Path) -> None:
    from shipyard.cli import app

    copy = tmp_path / "copy"
    shutil.copytree(plain_run.run_dir / "splits", copy / "splits")
    # plain_run drops user_id (no data.id_column): the situation the id column exists for
    for where, name in (("user_id == 123", "user_id"), ("`customer id` == 1 and x1 > 0", "customer id")):
        with pytest.raises(ShipyardError) as err:
            forget(copy, where)
        text = str(err.value)
        assert err.value.where == "--where" and f"unknown column {name!r}" in text
        assert "x1" in text and "label" in text and "data.id_column" in text
    res = CliRunner().invoke(app, ["data", "forget", str(copy), "--where", "user_id == 123"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "'user_id'" in res.output and "x1" in res.output
    assert len(pd.read_parquet(copy / "splits" / "train.parquet")) == len(
        pd.read_parquet(plain_run.run_dir / "splits" / "train.parquet")
    )  # nothing was erased


def test_id_column_config_is_validated(synth_csv: Path, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from shipyard.data.prepare import prepare_data

    for data, message in (
        ({"target": "label", "id_column": "label"}, "also the target"),
        ({"features": ["x1", "user_id"], "id_column": "user_id"}, "never a model input"),
    ):
        raw = job_dict(synth_csv)
        raw["data"].update(data)
        with pytest.raises(ValidationError, match=message) as err:
            Job.model_validate(raw)
        assert err.value.errors()[0]["loc"] == ("data", "id_column")

    raw = job_dict(synth_csv)
    raw["data"]["id_column"] = "userid"
    with pytest.raises(ShipyardError) as missing:
        prepare_data(Job.model_validate(raw), base_dir=tmp_path)
    assert "data.id_column" in str(missing.value.where) and "'userid'" in str(missing.value)
    assert "user_id" in str(missing.value)  # the close match is suggested


def test_id_column_does_not_hide_duplicates(tmp_path: Path) -> None:
    """Ids differ per record, so the duplicate check ignores them: the same example under two ids is one row."""
    from shipyard.data.prepare import prepare_data

    frame = pd.DataFrame({"x": [float(i % 20) for i in range(60)], "label": ["a", "b"] * 30, "uid": range(60)})
    frame.to_csv(tmp_path / "d.csv", index=False)
    raw = {
        "task": "classification",
        "data": {"source": {"path": str(tmp_path / "d.csv")}, "id_column": "uid", "split": {"method": "random"}},
        "model": {"type": "linear"},
    }
    prepared = prepare_data(Job.model_validate(raw), base_dir=tmp_path)
    rows = sum(len(s) for s in prepared.splits.values())
    assert rows == 20 and prepared.preprocessor.features == ["x"]
    assert all("uid" in s.frame.columns for s in prepared.splits.values())
