"""The loop's commands end to end on a real run: feedback import, label queue/import, monitor, promote, rollback,
and `data forget` reaching the prediction log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from shipyard.artifact import Artifact
from shipyard.cli import app
from shipyard.config.loop import LogPredictionsConfig
from shipyard.loop.predlog import PredictionLog, load_predictions
from shipyard.loop.store import LoopStore

FEATURES = ["age", "workclass", "education", "education-num", "marital-status", "occupation", "relationship",
            "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country"]  # fmt: skip


def _log(run: Path, frame: pd.DataFrame) -> list[str]:
    store = LoopStore.open(run.parent)
    records = frame[FEATURES].to_dict("records")
    plog = PredictionLog(store, model="adult", version=1, model_path=str(run / "model"), config=LogPredictionsConfig())
    ids = plog.log(records, Artifact.load(run).predict_records(records))
    plog.close()
    return ids


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_the_loop_commands(tmp_path, adult_young_run, adult_frame):
    run = tmp_path / "runs" / "champion"
    shutil.copytree(adult_young_run, run)  # a copy: `data forget` below rewrites it
    root = str(run.parent)
    traffic = adult_frame.sample(n=300, random_state=21)
    ids = _log(run, traffic)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "prediction_id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(ids[:40], traffic["Y"][:40], strict=True))
    )
    imported = _invoke("feedback", "import", str(labels), "--runs-root", root)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["imported"] == 40
    again = _invoke("feedback", "import", str(labels), "--runs-root", root)
    assert again.exit_code == 2 and "already has feedback" in again.output  # duplicates: nothing written

    queue = tmp_path / "queue.csv"
    queued = _invoke("label", "queue", "adult", "--n", "10", "--export", str(queue), "--runs-root", root)
    assert queued.exit_code == 0, queued.output
    assert json.loads(queued.stdout)["queued"] == 10
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    frame.loc[:2, "label"] = [">50K", "<=50K", ">50K"]
    frame.to_csv(queue, index=False)
    assert json.loads(_invoke("label", "import", "adult", str(queue), "--runs-root", root).stdout)["imported"] == 3

    monitored = _invoke("monitor", "adult", "--window", "1h", "--runs-root", root)
    assert monitored.exit_code in (0, 3), monitored.output  # 3: an alert was raised
    assert json.loads(monitored.stdout)["n_current"] == 300

    same = _invoke("promote", "adult", str(run), "--champion", str(run), "--runs-root", root, "--why", "test")
    assert same.exit_code == 2 and "not promoted" in same.output  # the champion against itself: kept
    nothing = _invoke("rollback", "adult", "--runs-root", root)
    assert nothing.exit_code == 2 and "no promotion" in nothing.output

    age = int(traffic["age"].iloc[0])
    expected = int((traffic["age"] == age).sum())
    forgot = _invoke("data", "forget", str(run), "--where", f"age == {age}")
    assert forgot.exit_code == 0, forgot.output
    assert json.loads(forgot.stdout)["prediction_log"]["removed"]["predictions"] == expected
    assert age not in set(load_predictions(LoopStore.open(run.parent), "adult")["age"])
