"""Store and file-writing hardening (issue #12): private SQLite files, umask-honouring atomic writes, storage
errors reported as ShipyardError, dead runs found by process id and host."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard import io
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json, atomic_write_parquet, atomic_write_text
from shipyard.store import KeyStore, RunStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def start(store: RunStore, run_id: str) -> None:
    store.start_run(
        run_id,
        Path("/runs") / run_id,
        name=run_id,
        task="regression",
        model_type="linear",
        config={},
        config_hash="h",
        seed=0,
    )


# ---- item 6: file modes ----------------------------------------------------------------------------------------


def test_atomic_writes_honour_the_umask(tmp_path: Path, umask_022: None) -> None:
    assert mode(atomic_write_text(tmp_path / "metrics.json", "{}")) == 0o644
    os.umask(0o027)
    assert mode(atomic_write_json(tmp_path / "group.json", {"a": 1})) == 0o640


def test_private_writes_are_0600(tmp_path: Path, umask_022: None) -> None:
    import pandas as pd

    assert mode(atomic_write_text(tmp_path / "secret.txt", "x", private=True)) == 0o600
    path = atomic_write_parquet(tmp_path / "splits" / "train.parquet", pd.DataFrame({"id": [1, 2], "x": [3, 4]}))
    assert mode(path) == 0o600
    assert pd.read_parquet(path)["id"].tolist() == [1, 2]
    assert not list((tmp_path / "splits").glob("*.tmp"))


def test_store_database_and_its_wal_files_are_private(tmp_path: Path, umask_022: None) -> None:
    runs = RunStore.for_root(tmp_path / "runs")
    db = tmp_path / "runs" / "shipyard.db"
    start(runs, "r1")
    keys = KeyStore(db)
    keys.create("frontend", "predict")
    with sqlite3.connect(db) as conn:  # keeps -wal and -shm open while checked
        conn.execute("SELECT COUNT(*) FROM runs").fetchone()
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.exists(), path
            assert mode(path) == 0o600, (path, oct(mode(path)))
    separate = KeyStore(tmp_path / "keys.db")  # a key store of its own
    separate.create("admin", "admin")
    assert mode(tmp_path / "keys.db") == 0o600


def test_an_older_world_readable_database_is_narrowed(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "shipyard.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    start(RunStore(db), "r1")
    assert mode(db) == 0o600


# ---- item 10: storage errors -------------------------------------------------------------------------------------


def test_a_full_disk_is_a_shipyard_error_naming_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(io.os, "replace", full)
    target = tmp_path / "report.html"
    with pytest.raises(ShipyardError, match="no space left") as info:
        atomic_write_text(target, "<html>")
    assert info.value.where == str(target) and "free some space" in str(info.value)
    assert not list(tmp_path.iterdir())  # no temp file left behind


@pytest.mark.parametrize("code", [errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_other_storage_errors_map(code: int) -> None:
    mapped = io.storage_error(OSError(code, os.strerror(code), "/x/y"))
    assert isinstance(mapped, ShipyardError) and mapped.where == "/x/y"
    assert io.storage_error(OSError(errno.ENOENT, "gone")) is None
    assert io.storage_error(ValueError("bug")) is None


# ---- item 11: dead runs ----------------------------------------------------------------------------------------


def test_a_killed_run_is_marked_killed(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from shipyard.store import RunStore
        RunStore.for_root(Path({str(root)!r})).start_run(
            "victim", Path("/runs/victim"), name="v", task="regression", model_type="linear", config={{}},
            config_hash="h", seed=0)
        print("started", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        store = RunStore.for_root(root)
        assert store.get("victim").status == "running"  # its process is alive
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    record = store.list_runs()[0]
    assert record.run_id == "victim" and record.status == "killed"
    assert record.finished_at is not None and f"pid {proc.pid}" in (record.error or "")
    start(store, "alive")  # this process: still running
    assert store.get("alive").status == "running"
    assert store.reap_dead_runs() == []


def test_a_run_on_another_host_or_a_reused_pid(tmp_path: Path) -> None:
    store = RunStore.for_root(tmp_path)
    start(store, "remote")
    start(store, "reused")
    with sqlite3.connect(tmp_path / "shipyard.db") as conn:
        conn.execute("UPDATE runs SET host = 'elsewhere', pid = 999999999 WHERE run_id = 'remote'")
        conn.execute("UPDATE runs SET pid_started = pid_started - 1 WHERE run_id = 'reused'")  # pid reused
    assert store.get("remote").status == "running"  # cannot be checked from here
    assert store.get("reused").status == "killed"


def test_a_resumed_run_is_running_again(tmp_path: Path) -> None:
    store = RunStore.for_root(tmp_path)
    start(store, "r1")
    store.finish_run("r1", status="killed", metrics={}, duration_s=1.0, error="interrupted")
    store.reopen_run("r1")
    record = store.get("r1")
    assert record.status == "running" and record.error is None and record.finished_at is None
    with pytest.raises(ShipyardError, match="no run"):
        store.reopen_run("nope")
