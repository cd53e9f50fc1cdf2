"""The monitor end to end with the tiny PhraseBank artefact: SIGKILL mid-stream and restart loses nothing and
counts nothing twice (file source and Redis), dead letters for malformed input, scoring through the artefact API."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from finmon_helpers import WATCHLIST, config_dict, keyword_model

from shipyard.apps.finmon.config import validate_config
from shipyard.apps.finmon.processing import EntityLinker
from shipyard.apps.finmon.runner import Monitor
from shipyard.apps.finmon.scoring import ArtifactModel, Scorer, pick_artifact
from shipyard.apps.finmon.sources import publish

T0 = 1_700_000_000
NAMES = ["Nokia", "Apple Inc", "Bank of America", "Stora Enso", "Allstate"]


@pytest.fixture(scope="module")
def sentences(data_dir: Path) -> list[str]:
    path = data_dir / "financial_phrasebank" / "Sentences_AllAgree.txt"
    return [line.rsplit("@", 1)[0] for line in path.read_text(encoding="latin-1").splitlines() if "@" in line]


def make_docs(sentences: list[str], n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"doc-{i}", "ts": T0 + 7 * i, "text": f"{NAMES[i % 5]} update {i}: {sentences[i % len(sentences)]}"}
            for i in range(start, start + n)]  # fmt: skip


def write_jsonl(path: Path, docs: list[dict[str, Any]], mode: str = "w") -> None:
    with open(path, mode, encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)


def write_config(tmp_path: Path, run: Path, sources: list[dict[str, Any]], store: Path) -> Path:
    data = config_dict(tmp_path, run=run, sources=sources, store=str(store))
    data["batching"] = {"size": 8, "max_wait_seconds": 0.05}
    path = tmp_path / f"finmon-{store.stem}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def count(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def snapshot(store: Path) -> dict[str, Any]:
    with sqlite3.connect(store) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM documents ORDER BY id")]
        aggs = db.execute("SELECT entity, win, bucket, n, n_scored, ROUND(sum_score, 3), n_negative FROM aggregates "
                          "ORDER BY entity, win, bucket").fetchall()  # fmt: skip
        mentions = db.execute("SELECT COUNT(*) FROM mentions").fetchone()[0]
        counted = db.execute("SELECT SUM(n) FROM aggregates WHERE win = '1d'").fetchone()[0]
    return {"ids": ids, "aggregates": aggs, "mentions": mentions, "counted": counted}


def run_killed_then_resumed(
    config: Path, store: Path, kill_at: int, total: int, between: Callable[[], None] | None = None
) -> None:
    """Start the monitor, SIGKILL it once ``kill_at`` documents are stored, then run it again until idle."""
    cmd = [sys.executable, "-m", "shipyard.apps.finmon.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, "run", str(config), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    try:
        while count(store) < kill_at:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.time() < deadline, "the monitor stored too little in two minutes"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert count(store) < total, "the stream was done before the kill: nothing was tested"
    if between is not None:
        between()
    done = subprocess.run([*cmd, "run", str(config), "--until-idle", "--quiet"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr


def reference(tmp_path: Path, run: Path, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The same documents through an uninterrupted monitor."""
    folder = tmp_path / "ref-in"
    folder.mkdir()
    write_jsonl(folder / "all.jsonl", docs)
    store = tmp_path / "ref.sqlite"
    config = validate_config(config_dict(tmp_path, run=run, store=str(store),
                                         sources=[{"type": "folder", "path": str(folder)}]))  # fmt: skip
    monitor = Monitor(config)
    monitor.run(until_idle=True)
    monitor.close()
    return snapshot(store)


def test_file_source_sigkill_and_restart_is_exactly_once(tiny_run: Path, sentences: list[str], tmp_path: Path) -> None:
    docs = make_docs(sentences, 480)
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", docs[:300])
    with open(folder / "b.jsonl", "w", encoding="utf-8") as fh:  # the last line is still being written
        fh.writelines(json.dumps(d) + "\n" for d in docs[300:400])
        fh.write(json.dumps(docs[400])[:20])
    store = tmp_path / "live.sqlite"
    config = write_config(tmp_path, tiny_run, [{"type": "folder", "path": str(folder)}], store)

    def finish_writing() -> None:  # while the monitor is down, the writer finishes its line and appends more
        with open(folder / "b.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(docs[400])[20:] + "\n")
            fh.writelines(json.dumps(d) + "\n" for d in docs[401:])

    run_killed_then_resumed(config, store, kill_at=100, total=480, between=finish_writing)
    got, want = snapshot(store), reference(tmp_path, tiny_run, docs)
    assert got["ids"] == sorted(d["id"] for d in docs)  # none lost
    assert got["aggregates"] == want["aggregates"]  # none counted twice
    assert got["counted"] == got["mentions"] > 400


def test_redis_sigkill_and_restart_is_exactly_once(
    tiny_run: Path, sentences: list[str], tmp_path: Path, redis_url: str
) -> None:
    import redis

    docs = make_docs(sentences, 480)
    client = redis.Redis.from_url(redis_url)
    publish(client, "finmon:documents", docs)
    store = tmp_path / "live.sqlite"
    config = write_config(tmp_path, tiny_run, [{"type": "redis", "url": redis_url}], store)
    run_killed_then_resumed(config, store, kill_at=100, total=480)
    got, want = snapshot(store), reference(tmp_path, tiny_run, docs)
    assert got["ids"] == sorted(d["id"] for d in docs)
    assert got["aggregates"] == want["aggregates"]
    pending = client.xpending("finmon:documents", "finmon")
    assert pending["pending"] == 0  # every entry acknowledged once stored
    client.close()


def test_dead_letters_and_the_stream_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [b'{"id": "ok-1", "text": "Nokia profit rose"}', b'{"id": "bad", "text": ',
             b'{"id": "no-text", "title": "Nokia"}', json.dumps({"id": "big", "text": "a" * 1_000_000}).encode(),
             '{"id": "latin", "text": "Nokia s\u00e4\u00e4"}'.encode("latin-1"),
             b'{"id": "ok-2", "text": "Stora Enso sales fell"}']  # fmt: skip
    (folder / "feed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "feed.csv").write_bytes(b"id,ts,text\ncsv-1,1700000000,Bank of America profit up\ncsv-2,1,\n")
    config = validate_config(config_dict(tmp_path, sources=[{"type": "folder", "path": str(folder)}]))
    monitor = Monitor(config, model=keyword_model)
    stats = monitor.run(until_idle=True)
    reasons = sorted(d["reason"].split(":")[0] for d in monitor.store.dead_letters())
    assert reasons == ["bad JSON", "missing text", "missing text", "text too long", "wrong encoding"]
    assert stats.documents == 3 and stats.dead == 5
    rows = dict(monitor.store.db.execute("SELECT id, label FROM documents").fetchall())
    assert rows == {"ok-1": "positive", "ok-2": "negative", "csv-1": "positive"}
    assert monitor.run(until_idle=True).documents == 0  # positions saved: nothing is read twice
    assert len(monitor.store.dead_letters()) == 5
    monitor.close()


def test_scoring_through_the_artifact_api(tiny_run: Path, tmp_path: Path) -> None:
    config = validate_config(config_dict(tmp_path, run=tiny_run))
    model = ArtifactModel(config.model, tmp_path)
    assert model.path == tiny_run  # no optimized/ folder: the run itself
    proba = model(["Nokia's operating profit rose to EUR 5 mn.", "Sales fell sharply.", "The meeting is on Friday."])
    assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    linker = EntityLinker(config.watchlist)
    scorer = Scorer(model, linker, max_sentences=8)
    from shipyard.apps.finmon.processing import Document

    doc = Document("x", "Nokia profit rose. Stora Enso sales fell.", 0.0, "t", 0.0,
                   entities=["NOKIA", "STORA"])  # fmt: skip
    scorer.score([doc])
    assert doc.score is not None and doc.label in {"negative", "neutral", "positive"}
    solo = proba_of = model(["Nokia profit rose.", "Stora Enso sales fell."])
    values = proba_of[:, 2] - proba_of[:, 0]
    assert doc.entity_scores["NOKIA"] == pytest.approx(values[0], abs=1e-5)  # its own sentence only
    assert doc.entity_scores["STORA"] == pytest.approx(values[1], abs=1e-5)
    assert solo.shape == (2, 3) and scorer.model_seconds > 0
    optimized = tiny_run / "optimized" / "int8"
    assert pick_artifact(tiny_run, ["int8", "original"]) == (optimized if optimized.exists() else tiny_run)


def test_config_with_redis_source_validates(tmp_path: Path) -> None:
    config = validate_config(config_dict(tmp_path, sources=[{"type": "redis", "stream": "s"}]))
    assert config.sources[0].group == "finmon" and len(WATCHLIST) == len(config.watchlist)


def test_bundled_replay_through_the_cli(tiny_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shipyard.apps.finmon.cli import cli

    example = Path(__file__).parents[3] / "examples" / "finmon"
    data = yaml.safe_load((example / "finmon.yaml").read_text(encoding="utf-8"))
    data.update({"model": {"run": str(tiny_run)}, "store": str(tmp_path / "replay.sqlite"), "sources": []})
    config = tmp_path / "finmon.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(cli, ["replay", str(config), str(example / "replay.jsonl"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "570 documents" in result.output and "0 dead letters" in result.output
    alerts = [line for line in result.output.splitlines() if line.startswith("alert ")]
    assert len(alerts) == 1 and "STORA" in alerts[0]
