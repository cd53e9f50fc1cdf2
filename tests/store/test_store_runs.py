"""RunStore: round trips, prefix lookup, listing, compare, flags and the rich renderers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from shipyard.errors import ShipyardError
from shipyard.store import RunRecord, RunStore, compare_table, run_detail, runs_table
from shipyard.store.runs import flatten

CONFIG_A = {"model": {"type": "mlp", "hidden": [64, 32], "lr": 0.1}, "training": {"epochs": 5}, "seed": 1}
CONFIG_B = {"model": {"type": "mlp", "hidden": [64, 32], "lr": 0.01}, "training": {"epochs": 5, "amp": True}, "seed": 1}


def start(store: RunStore, run_id: str, config: dict | None = None, **kw: object) -> None:
    args: dict = {
        "name": f"name-{run_id}",
        "task": "classification",
        "model_type": "mlp",
        "config": config if config is not None else CONFIG_A,
        "config_hash": f"hash-{run_id}",
        "seed": 1,
    }
    args.update(kw)
    store.start_run(run_id, Path("/runs") / run_id, **args)


def render(table: Table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_start_get_finish_round_trip(runs: RunStore) -> None:
    start(runs, "20250101-120000-abcd", seed=7)
    record = runs.get("20250101-120000-abcd")
    assert isinstance(record, RunRecord)
    assert record.status == "running"
    assert record.run_dir == Path("/runs/20250101-120000-abcd")
    assert record.config == CONFIG_A
    assert record.seed == 7
    assert record.metrics == {} and record.flags == {} and record.finished_at is None

    metrics = {"validation": {"accuracy": np.float32(0.75), "loss": 0.5}, "test": {"accuracy": 0.7}}
    runs.finish_run("20250101-120000-abcd", status="finished", metrics=metrics, duration_s=12.5)
    record = runs.get("20250101-120000-abcd")
    assert record.status == "finished"
    assert record.metrics["validation"]["accuracy"] == pytest.approx(0.75)
    assert record.metrics["test"] == {"accuracy": 0.7}
    assert record.duration_s == 12.5
    assert record.finished_at is not None and record.finished_at >= record.started_at
    assert record.error is None


def test_failed_run_keeps_error(runs: RunStore) -> None:
    start(runs, "r1")
    runs.finish_run("r1", status="failed", metrics={}, duration_s=1.0, error="CUDA out of memory")
    record = runs.get("r1")
    assert record.status == "failed" and record.error == "CUDA out of memory"


def test_bad_inputs(runs: RunStore) -> None:
    start(runs, "r1")
    with pytest.raises(ShipyardError, match="already exists"):
        start(runs, "r1")
    with pytest.raises(ShipyardError, match="final status"):
        runs.finish_run("r1", status="running", metrics={}, duration_s=1)  # type: ignore[arg-type]
    with pytest.raises(ShipyardError, match="no run 'nope'"):
        runs.finish_run("nope", status="finished", metrics={}, duration_s=1)
    with pytest.raises(ShipyardError, match="unknown status"):
        runs.list_runs(status="done")
    with pytest.raises(ShipyardError, match="JSON"):
        start(runs, "r2", config={"x": object()})


def test_prefix_lookup(runs: RunStore) -> None:
    start(runs, "20250101-aaaa")
    start(runs, "20250101-aabb")
    start(runs, "20250202-cccc")
    assert runs.get("20250202").run_id == "20250202-cccc"
    assert runs.get("20250101-aab").run_id == "20250101-aabb"
    assert runs.get("20250101-aaaa").run_id == "20250101-aaaa"  # exact id


def test_ambiguous_prefix_lists_matches(runs: RunStore) -> None:
    start(runs, "20250101-aaaa")
    start(runs, "20250101-aabb")
    with pytest.raises(ShipyardError) as info:
        runs.get("20250101-aa")
    message = str(info.value)
    assert "ambiguous" in message and "'20250101-aa'" in message
    assert "20250101-aaaa" in message and "20250101-aabb" in message


def test_not_found_names_id_and_close_ids(runs: RunStore) -> None:
    start(runs, "20250101-aaaa")
    start(runs, "20250101-bbbb")
    with pytest.raises(ShipyardError) as info:
        runs.get("20250101-aaab")
    message = str(info.value)
    assert "no run matches '20250101-aaab'" in message
    assert "20250101-aaaa" in message


def test_prefix_is_literal_not_a_like_pattern(runs: RunStore) -> None:
    start(runs, "run_1")
    start(runs, "runX1")
    assert runs.get("run_").run_id == "run_1"
    with pytest.raises(ShipyardError, match="no run matches"):
        runs.get("run%")
    with pytest.raises(ShipyardError, match="no run matches"):
        runs.get("RUN_")  # case-sensitive, like git


def test_empty_store_not_found(runs: RunStore) -> None:
    with pytest.raises(ShipyardError, match="no runs are recorded yet"):
        runs.get("abc")


def test_list_newest_first_with_limit_and_status(runs: RunStore) -> None:
    for i in range(5):
        start(runs, f"run-{i}")
    runs.finish_run("run-1", status="finished", metrics={}, duration_s=1)
    runs.finish_run("run-3", status="killed", metrics={}, duration_s=1)
    assert [r.run_id for r in runs.list_runs()] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert [r.run_id for r in runs.list_runs(limit=2)] == ["run-4", "run-3"]
    assert [r.run_id for r in runs.list_runs(status="running")] == ["run-4", "run-2", "run-0"]
    assert [r.run_id for r in runs.list_runs(status="killed")] == ["run-3"]


def test_compare(runs: RunStore) -> None:
    start(runs, "run-a", config=CONFIG_A)
    start(runs, "run-b", config=CONFIG_B)
    runs.finish_run(
        "run-a",
        status="finished",
        metrics={
            "validation": {"accuracy": 0.8, "f1": 0.7, "confusion_matrix": [[1, 2], [3, 4]]},
            "test": {"accuracy": 0.78},
        },
        duration_s=1,
    )
    runs.finish_run(
        "run-b",
        status="finished",
        metrics={"validation": {"accuracy": 0.85, "f1": 0.7, "per_class": {"x": 0.5}}, "test": {"accuracy": 0.75}},
        duration_s=1,
    )
    result = runs.compare("run-a", "run-b")
    assert result["a"] == "run-a" and result["b"] == "run-b"
    assert result["config"] == {
        "model.lr": {"a": 0.1, "b": 0.01},
        "training.amp": {"a": None, "b": True},
    }
    val = result["metrics"]["validation"]
    assert val["accuracy"]["a"] == 0.8 and val["accuracy"]["b"] == 0.85
    assert val["accuracy"]["delta"] == pytest.approx(0.05)
    assert val["f1"]["delta"] == pytest.approx(0.0)
    assert val["per_class.x"] == {"a": None, "b": 0.5, "delta": None}
    assert "confusion_matrix" not in val  # lists are not scalar metrics
    assert result["metrics"]["test"]["accuracy"]["delta"] == pytest.approx(-0.03)

    # records and prefixes are accepted too
    assert runs.compare(runs.get("run-a"), "run-b") == result

    text = render(compare_table(result))
    assert "config.model.lr" in text and "0.01" in text
    assert "validation.accuracy" in text and "+0.05" in text
    assert "test.accuracy" in text and "-0.03" in text


def test_compare_identical_configs(runs: RunStore) -> None:
    start(runs, "run-a")
    start(runs, "run-b")
    result = runs.compare("run-a", "run-b")
    assert result["config"] == {}
    assert result["metrics"] == {"validation": {}, "test": {}}
    assert "identical" in render(compare_table(result))


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def test_mark_flags(runs: RunStore) -> None:
    start(runs, "20250101-abcd")
    record = runs.mark("20250101", "needs_retraining", True)
    assert record.flags == {"needs_retraining": True}
    runs.mark("20250101-abcd", "drift_score", 0.42)
    assert runs.get("20250101-abcd").flags == {"needs_retraining": True, "drift_score": 0.42}
    runs.mark("20250101-abcd", "needs_retraining", None)
    assert runs.get("20250101-abcd").flags == {"drift_score": 0.42}
    with pytest.raises(ShipyardError):
        runs.mark("nope", "x", 1)


def test_concurrent_marks_do_not_lose_flags(runs: RunStore) -> None:
    start(runs, "r1")
    threads = [threading.Thread(target=runs.mark, args=("r1", f"flag{i}", i)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runs.get("r1").flags == {f"flag{i}": i for i in range(16)}


def test_delete(runs: RunStore) -> None:
    start(runs, "r1")
    start(runs, "r2")
    deleted = runs.delete("r1")
    assert deleted.run_id == "r1"
    assert [r.run_id for r in runs.list_runs()] == ["r2"]
    with pytest.raises(ShipyardError):
        runs.get("r1")
    with pytest.raises(ShipyardError):
        runs.delete("r1")


def test_runs_table_and_detail_render(runs: RunStore) -> None:
    start(runs, "run-a", name="baseline [mlp]")
    runs.finish_run("run-a", status="finished", metrics={"validation": {"accuracy": 0.8123}}, duration_s=75)
    start(runs, "run-b")
    runs.mark("run-b", "needs_retraining", True)
    table = runs_table(runs.list_runs())
    assert isinstance(table, Table)
    text = render(table)
    assert "run-a" in text and "run-b" in text
    assert "baseline [mlp]" in text  # markup-like names are shown literally
    assert "val.accuracy=0.8123" in text
    assert "needs_retraining=True" in text
    assert "1m15s" in text

    detail = run_detail(runs.get("run-a"))
    assert isinstance(detail, Table)
    text = render(detail)
    for expected in ("run-a", "finished", "validation.accuracy", "config model.lr", "hash-run-a"):
        assert expected in text

    assert "no runs recorded" in render(runs_table([]))
