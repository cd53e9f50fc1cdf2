"""The typed `recommend` section: validated up front with lines, and only for task: recommendation."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config.loader import ConfigError, load_job


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_misspelt_keys_get_lines_and_suggestions(tmp_path: Path) -> None:
    path = _write(tmp_path, "task: recommendation\nrecommend:\n  data: {path: x, formt: csv}\n  model: {type: bprr}\n")
    with pytest.raises(ConfigError) as info:
        load_job(path)
    text = str(info.value)
    assert "recommend.data.formt" in text and "format" in text and "bprr" in text


def test_sections_belong_to_their_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a `recommend` section"):
        load_job(_write(tmp_path, "task: recommendation\n"))
    with pytest.raises(ConfigError, match="belongs to task: recommendation"):
        load_job(_write(tmp_path, "task: regression\ndata: {source: {path: a.csv}}\nmodel: {type: linear}\n"
                                  "recommend: {data: {path: x}}\n"))  # fmt: skip
    with pytest.raises(ConfigError, match="needs the section"):
        load_job(_write(tmp_path, "task: classification\n"))
    job = load_job(_write(tmp_path, "task: recommendation\nrecommend: {data: {path: x}, model: {type: mf}}\n"))
    assert job.recommend is not None and job.recommend.model.regularisation() == 0.1
