"""Erasure requests and the model card's privacy / personal-data / fairness sections."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

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
