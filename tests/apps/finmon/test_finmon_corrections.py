"""Analysts' corrections: stored once per document, filed in the loop's feedback store of the model's run, and
learnt from by `shipyard retrain`; a refusal by the loop leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from finmon_helpers import burst_stream, config_dict, keyword_model

from shipyard.apps.finmon.config import validate_config
from shipyard.apps.finmon.corrections import CorrectionError, correct, prediction_id
from shipyard.apps.finmon.runner import Monitor
from shipyard.loop.feedback import labelled_rows
from shipyard.loop.store import LoopStore

T0 = 1_700_000_000 - 1_700_000_000 % 3600


def _monitor(tmp_path: Path, run: Path | str, **corrections: object) -> Monitor:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "news.jsonl").write_text("".join(json.dumps(d) + "\n" for d in burst_stream(T0)), encoding="utf-8")
    config = validate_config(config_dict(tmp_path, run, sources=[{"type": "folder", "path": str(folder)}],
                                         corrections=corrections))  # fmt: skip
    monitor = Monitor(config, model=keyword_model)
    assert monitor.run(until_idle=True).alerts == 1
    return monitor


def test_a_correction_reaches_the_loop_and_retrain_learns_from_it(tmp_path: Path, tiny_run: Path) -> None:
    monitor = _monitor(tmp_path, tiny_run, model_name="finmon-corrections-test")
    store, config = monitor.store, monitor.config
    assert store.document("x3")["label"] == "negative"
    done = correct(store, config, "x3", "neutral", actor="analyst-1")
    assert done["loop"] == {"prediction_id": prediction_id("finmon-corrections-test", "x3"),
                            "model": "finmon-corrections-test"}  # fmt: skip
    loop = LoopStore.open(tiny_run.parent)
    rows = labelled_rows(loop, "finmon-corrections-test")
    assert list(rows["_target"]) == ["neutral"] and rows["text"][0].startswith("Nokia profit fell, a loss")
    assert list(rows["_correct"]) == [False]  # the model had said negative
    assert len(labelled_rows(loop, under=tiny_run)) >= 1  # what `shipyard retrain <run>` reads
    with pytest.raises(CorrectionError, match="already corrected") as twice:
        correct(store, config, "x3", "positive")
    assert twice.value.status == 409 and store.corrections() == {"x3": "neutral"}
    for doc_id, label, status in (("nope", "neutral", 404), ("x4", "bullish", 422)):
        with pytest.raises(CorrectionError) as refused:
            correct(store, config, doc_id, label)
        assert refused.value.status == status
    assert len(labelled_rows(loop, "finmon-corrections-test")) == 1

    from shipyard.loop.retrain import retrain

    result = retrain(tiny_run, store=loop, model="finmon-corrections-test")
    assert result["feedback_rows"] == 1 and Path(result["run_dir"]).is_dir()
    monitor.close()


def test_a_correction_the_loop_cannot_file_is_not_kept(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, tmp_path / "not-a-run")
    with pytest.raises(CorrectionError, match=r"no shipyard\.json"):
        correct(monitor.store, monitor.config, "x3", "neutral")
    assert monitor.store.corrections() == {}  # rolled back with the loop's refusal
    local = validate_config(config_dict(tmp_path, tmp_path / "not-a-run", corrections={"loop": False}))
    assert correct(monitor.store, local, "x3", "neutral")["loop"] is None  # loop off: kept locally only
    assert monitor.store.corrections() == {"x3": "neutral"}
    monitor.close()
