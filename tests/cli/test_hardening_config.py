"""Issue #12 (config safety, resume, JSON input) through the command line: an alias bomb exits 2 in well under a
second, `--resume` refuses a changed config naming each difference, and JSON / per-class text folders train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def shipyard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
)


@pytest.mark.parametrize("command", ["validate", "train"])
def test_alias_bomb_exits_2_in_milliseconds(tmp_path: Path, command: str) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text("task: classification\ndata: {source: {format: sklearn_digits}}\nmodel: {type: mlp}\n" + BOMB)
    started = time.perf_counter()
    # before the fix this ran past any timeout and grew to gigabytes; the subprocess timeout guards the suite
    result = shipyard(command, str(config), timeout=30)
    assert result.returncode == 2, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert "alias" in result.stderr and "Traceback" not in result.stderr
    assert time.perf_counter() - started < 20  # mostly interpreter start-up; the check itself takes milliseconds
    assert not (tmp_path / "runs").exists()
