"""data.derive: the whitelist refuses what is not arithmetic (with the YAML line), the data stage checks the
columns an expression reads, x / 0 is imputed like a missing value, and a trained artefact derives the columns from
the raw columns of a predict / serve request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.artifact import Artifact
from shipyard.config.derive import parse_expression
from shipyard.config.loader import ConfigError, load_job
from shipyard.data.derive import derive_columns
from shipyard.errors import ShipyardError
from shipyard.pipeline import run_job
from shipyard.serve.models import read_spec
from tiny_runs import tiny_job, write_rows


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("__import__('os').system('x')", "call"),
        ("a.real", "attribute"),
        ("a[0]", "subscript"),
        ("a > b", "comparison"),
        ("(lambda: 1)()", "call"),
        ("'x'", "not a number"),
        ("log(a, b)", "takes 1"),
        ("max(a)", "takes 2 to 8"),
        ("open(a)", "unknown function"),
        ("log1p(x=a)", "positional"),
        ("a +", "not an arithmetic expression"),
        ("log", "is a function"),
    ],
)
def test_the_whitelist_names_what_it_refuses(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_expression(text)


def test_allowed_expressions_list_the_columns_they_read() -> None:
    assert parse_expression("total_rooms / households")[1] == ["total_rooms", "households"]
    assert parse_expression('log1p(col("capital-gain")) - -2 ** 0.5 * max(a, b, 0)')[1] == ["capital-gain", "a", "b"]


def test_values_division_by_zero_and_missing_become_nan() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, -4.0], "b": [2.0, 0.0, 1.0, 1.0]})
    out = derive_columns(
        frame,
        {"r": "a / b", "s": "r * 2 + sin(radians(90))", "m": "min(a, b)", "l": "log(a)", "x": "abs(-a) ** 2"},
    )
    assert "r" not in frame.columns  # the input frame is left as it was
    np.testing.assert_allclose(out["r"], [0.5, np.nan, np.nan, -4.0])
    np.testing.assert_allclose(out["s"], [2.0, np.nan, np.nan, -7.0])
    np.testing.assert_allclose(out["m"], [1.0, 0.0, np.nan, -4.0])
    np.testing.assert_allclose(out["l"], [0.0, np.log(2.0), np.nan, np.nan])
    np.testing.assert_allclose(out["x"], [1.0, 4.0, np.nan, 16.0])
    with pytest.raises(ShipyardError, match="column 'b' is missing"):
        derive_columns(frame[["a"]], {"r": "a / b"})


def test_a_forbidden_expression_in_a_job_file_gets_its_line(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "task: regression\nmodel: {type: linear}\ndata:\n  source: {path: rows.csv}\n  target: y\n"
        "  derive:\n    ok: a / b\n    bad: a.__class__\n"
    )
    with pytest.raises(ConfigError) as info:
        load_job(path)
    assert "job.yaml:8" in str(info.value) and "a.__class__" in str(info.value) and "attribute" in str(info.value)
    path.write_text(path.read_text().replace("a.__class__", "a * 2") + "  features: [a]\n")
    with pytest.raises(ConfigError, match="reads column 'b'"):
        load_job(path)


def test_the_data_stage_refuses_an_unknown_or_non_numeric_column(tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.csv")
    for derive, message in (({"r": "a / nope"}, "'nope', which is not a feature"), ({"r": "c * 2"}, "categorical")):
        job = tiny_job(rows, data={"source": {"path": str(rows)}, "target": "label", "derive": derive})
        with pytest.raises(ShipyardError, match=message):
            run_job(job, base_dir=tmp_path, run_dir=tmp_path / "never", show_progress=False)
        assert not (tmp_path / "never").exists()  # refused before any run folder


def test_a_trained_artefact_derives_the_columns_from_a_raw_request(tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.csv")
    frame = pd.read_csv(rows)
    frame.loc[0, "b"] = 0.0  # a / b is infinite on this row: imputed, not an error
    frame.to_csv(rows, index=False)
    data = {
        "source": {"path": str(rows)},
        "target": "label",
        "split": {"validation": 0.2, "test": 0.2},
        "derive": {"ratio": "a / b", "total": "a + b"},
        "cleaning": {"missing": "drop"},
    }
    result = run_job(tiny_job(rows, data=data), base_dir=tmp_path, run_dir=tmp_path / "run", show_progress=False)
    artifact = Artifact.load(result.run_dir / "model")
    assert [f["name"] for f in artifact.features] == ["a", "b", "c"]  # a request carries the raw columns only
    assert [f["name"] for f in read_spec(result.run_dir / "model").features] == ["a", "b", "c"]  # serve's schema
    assert artifact.preprocessor.feature_names[-2:] == ["ratio", "total"]
    assert artifact.preprocessor.derive == {"ratio": "a / b", "total": "a + b"}
    out = artifact.predict_records([{"a": 1.5, "b": 0.0, "c": "x"}, {"a": -2.0, "b": -1.0, "c": "y"}])
    assert len(out) == 2 and all(set(r["probabilities"]) == {"no", "yes"} for r in out)
    stored = pd.read_parquet(result.run_dir / "splits" / "train.parquet")
    assert "ratio" not in stored.columns  # the stored splits keep the raw rows; the model derives
    with pytest.raises(ShipyardError, match="column 'b' is missing"):
        artifact.predict_records([{"a": 1.0, "c": "x"}])
