"""The prediction log: sampling, redaction, batching, retention, and a writer killed mid-batch."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import sqlalchemy as sa

from shipyard.config.loop import LogPredictionsConfig, parse_log_predictions
from shipyard.loop.predlog import PredictionLog, load_predictions, purge_expired
from shipyard.loop.store import LoopStore, predictions


def _outputs(n: int) -> list[dict]:
    return [{"label": "pos", "probabilities": {"neg": 0.3, "pos": 0.7}} for _ in range(n)]


def _count(store: LoopStore) -> int:
    with store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one()


def test_every_answer_gets_an_id_and_sampled_rows_are_written_redacted(store, model_dir):
    log = PredictionLog(store, model="m", version=1, model_path=str(model_dir), config=LogPredictionsConfig(sample=1.0))
    inputs = [{"text": "mail me at jane.doe@example.com", "age": 31}, {"text": "fine film", "age": 40}]
    ids = log.log(inputs, _outputs(2))
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)
    assert log.pending == 2 and _count(store) == 0  # batched: nothing written until a flush
    assert log.flush() == 2
    frame = load_predictions(store, "m")
    assert set(frame["_id"]) == set(ids)
    texts = set(frame["text"])
    assert "mail me at [EMAIL]" in texts and not any("@" in t for t in texts)
    row = frame.set_index("_id").loc[ids[0]]
    assert row["_label"] == "pos" and abs(row["_confidence"] - 0.7) < 1e-9 and abs(row["_margin"] - 0.4) < 1e-9


def test_sampling_keeps_about_the_configured_share(store, model_dir):
    log = PredictionLog(
        store, model="m", version=1, model_path=str(model_dir), config=LogPredictionsConfig(sample=0.1), seed=3
    )
    ids = log.log([{"x": i} for i in range(2000)], _outputs(2000))
    log.flush()
    assert len(ids) == 2000  # every response has an id
    assert 150 <= _count(store) <= 250


def test_a_full_batch_is_written_by_the_background_thread(store, model_dir):
    cfg = LogPredictionsConfig(batch_size=10, flush_interval_s=60)
    log = PredictionLog(store, model="m", version=1, model_path=str(model_dir), config=cfg).start()
    try:
        log.log([{"x": i} for i in range(10)], _outputs(10))
        deadline = time.time() + 10
        while _count(store) < 10 and time.time() < deadline:
            time.sleep(0.05)
        assert _count(store) == 10
        log.log([{"x": 1}], _outputs(1))
    finally:
        log.close()  # a clean stop writes the rest
    assert _count(store) == 11


def test_retention_deletes_old_rows(store, model_dir):
    clock = [1_000_000.0]
    cfg = LogPredictionsConfig(retention_days=1)
    log = PredictionLog(store, model="m", version=1, model_path=str(model_dir), config=cfg, clock=lambda: clock[0])
    log.log([{"x": 1}], _outputs(1))
    log.flush()
    clock[0] += 2 * 86400
    log.log([{"x": 2}], _outputs(1))
    log.flush()  # the flush purges what is past its retention
    frame = load_predictions(store, "m")
    assert list(frame["x"]) == [2]
    assert purge_expired(store, now=clock[0] + 2 * 86400) == 1


def test_log_predictions_setting():
    assert parse_log_predictions(None) is None
    assert parse_log_predictions(True) == LogPredictionsConfig()
    assert parse_log_predictions({"sample": 0.1, "retention_days": 30}).sample == 0.1
    import pytest

    from shipyard.config.errors import ConfigError

    with pytest.raises(ConfigError, match="sample"):
        parse_log_predictions({"sample": 2})
    with pytest.raises(ConfigError, match="retention"):
        parse_log_predictions({"retension_days": 3})


WRITER = textwrap.dedent(
    """
    import sys
    from shipyard.config.loop import LogPredictionsConfig
    from shipyard.loop.predlog import PredictionLog
    from shipyard.loop.store import LoopStore

    store = LoopStore(sys.argv[1])
    log = PredictionLog(store, model="m", version=1, model_path=sys.argv[2],
                        config=LogPredictionsConfig(batch_size=50, flush_interval_s=3600))
    out = [{"label": "pos", "probabilities": {"neg": 0.1, "pos": 0.9}}] * 50
    i = 0
    while True:
        log.log([{"x": i + k, "text": "row " * 200} for k in range(50)], out)  # a full batch: flushed inline
        i += 50
        if i == 500:
            print("ready", flush=True)
    """
)


def test_killing_a_writer_mid_batch_loses_at_most_that_batch(tmp_path, model_dir):
    db = tmp_path / "loop.db"
    url = f"sqlite:///{db}"
    LoopStore(url)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(model_dir)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # let it get well into later batches
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, low, high = conn.execute(
            "SELECT COUNT(*), MIN(json_extract(inputs, '$.x')), MAX(json_extract(inputs, '$.x')) FROM loop_predictions"
        ).fetchone()
    finally:
        conn.close()
    assert count >= 500 and count % 50 == 0  # whole batches only: the one in flight is lost, never half-written
    assert low == 0 and high == count - 1  # and every committed batch is complete
