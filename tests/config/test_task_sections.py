"""The sections of the retrieval and recommendation tasks: `shipyard validate` names a misspelt key with its line
and the nearest known key, like every other section (tests/config/test_typed_job.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli import app

RETRIEVAL = """task: retrieval
data:
  source: {{path: pairs.csv}}
retrieval:
  query_column: instruction
  passage_column: response
  split:
    held_out: queries
    {split}
  index:
    {index}
  {top}
model:
  type: biencoder
  pretrained: minilm
"""
RECOMMEND = """task: recommendation
recommend:
  data:
    path: events.csv
    {data}
  model:
    type: bpr
    {model}
"""


@pytest.mark.parametrize(
    ("text", "line", "bad", "good"),
    [
        (
            RETRIEVAL.format(split="seed: 0", index="kind: auto", top="cutofs: [1, 5]"),
            12,
            "retrieval.cutofs",
            "cutoffs",
        ),
        (
            RETRIEVAL.format(split="seeed: 0", index="kind: auto", top="ranking: dense"),
            9,
            "retrieval.split.seeed",
            "seed",
        ),
        (
            RETRIEVAL.format(split="seed: 0", index="kidn: flat", top="ranking: dense"),
            11,
            "retrieval.index.kidn",
            "kind",
        ),
        (RECOMMEND.format(data="formt: csv", model="dim: 8"), 5, "recommend.data.formt", "format"),
        (RECOMMEND.format(data="format: csv", model="dimm: 8"), 8, "recommend.model.dimm", "dim"),
    ],
)
def test_a_misspelt_key_is_named_with_its_line(tmp_path: Path, text: str, line: int, bad: str, good: str) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(job)])
    assert result.exit_code == 2, result.output
    assert f"job.yaml:{line} {bad}: unknown key" in result.output and f"did you mean `{good}`" in result.output
