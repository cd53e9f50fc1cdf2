"""The job loader stays bounded on hostile YAML: an alias bomb, a self-referencing alias or a huge file is refused
in milliseconds with one problem, and ordinary anchors still work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shipyard.config.loader import MAX_CONFIG_BYTES, ConfigError, load_job, parse_yaml

GOOD = """task: classification
data:
  source: {format: sklearn_digits}
model: {type: mlp, hidden: [8]}
training: {epochs: 1}
"""


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """`levels` lines, each a list of `width` aliases to the line above: width**levels values once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(GOOD + alias_bomb())
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_job(path)
    assert time.perf_counter() - started < 1.0
    assert len(info.value.problems) == 1
    assert "alias" in str(info.value) and str(path) in str(info.value)


def test_small_alias_bombs_are_refused_too() -> None:
    # 6 levels expand to 531,441 values: past the limit, though only 0.85 s for the old line map
    with pytest.raises(ConfigError, match="alias"):
        parse_yaml(GOOD + alias_bomb(levels=6), "job.yaml")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        parse_yaml(GOOD + "loop: &loop [1, *loop]\n", "job.yaml")


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="too large"):
        load_job(path)


def test_ordinary_anchors_still_load(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        """task: classification
data:
  source: {format: sklearn_digits}
model: {type: mlp, hidden: &h [8, 4]}
training: &t {epochs: 1}
evaluation: {metrics: [accuracy]}
"""
    )
    job = load_job(path)
    assert job.model.params()["hidden"] == [8, 4] and job.training.epochs == 1
