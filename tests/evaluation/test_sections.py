"""Issue #13: report sections are built by the evaluation layer from plain data, one rule picks a run's splits,
and no lower layer imports the pipeline (or registers anything with it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

from shipyard.evaluation.report import write_report
from shipyard.evaluation.sections import build_sections, privacy_section, soup_section
from shipyard.evaluation.splits import metric_splits

SRC = Path(__file__).resolve().parents[2] / "src" / "shipyard"

PRIVACY = {
    "epsilon": 3.21,
    "delta": 1e-5,
    "target_epsilon": 4.0,
    "noise_multiplier": 1.1,
    "accountant": "prv",
    "steps": 20,
    "mechanism": "DP-SGD",
}
SOUP = {
    "method": "greedy",
    "metric": "accuracy",
    "chosen": [1, 3],
    "ingredients": [
        {"ingredient": i, "seed": i, "learning_rate": 0.01, "epochs": 2, "best_epoch": 2, "val_accuracy": 0.8}
        for i in (1, 2, 3)
    ],
}
METRICS = {
    "validation": {"accuracy": 0.9, "n": 10},
    "test": {"accuracy": 0.8, "n": 10},
    "training": {"epochs": 2, "steps": 20, "soup": SOUP},
    "privacy": PRIVACY,
    "fairness": {"skipped": "no positive class"},
}


def test_metric_splits_keeps_only_the_data_splits_in_order() -> None:
    assert list(metric_splits({"test": {"a": 1}, "training": {"epochs": 2}, "train": {"a": 2}})) == ["train", "test"]
    assert metric_splits({"accuracy": 0.5}) == {"test": {"accuracy": 0.5}}  # a flat file is the test split
    assert metric_splits({"training": {"epochs": 1}}) == {}  # nothing evaluated: no split at all
    assert metric_splits({}) == {}


def _metrics_table_header(page: str) -> list[str]:
    body = page[page.index('id="metrics"') :]
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", body, re.S)
    assert head is not None
    return re.findall(r"<th>(.*?)</th>", head.group(1))


def test_report_metrics_table_has_only_split_columns(tmp_path: Path) -> None:
    """Before: the report showed `training`, `privacy` and `fairness` as split columns (the model card did not)."""
    page = write_report(
        tmp_path,
        job_config={"task": "classification", "model": {"type": "mlp"}},
        metrics=METRICS,
        summary={},
        train_log=[],
        test_predictions=None,
    ).read_text(encoding="utf-8")
    assert _metrics_table_header(page) == ["metric", "validation", "test"]


def test_privacy_and_soup_sections_come_from_plain_data() -> None:
    (privacy,) = privacy_section(PRIVACY)
    assert privacy.title == "Privacy" and "ε = 3.21" in privacy.html and "DP-SGD" not in privacy.html
    (soup,) = soup_section(SOUP, {"accuracy": 0.85})
    assert soup.title == "Model soup" and "ingredients 1, 3" in soup.html and "0.8500" in soup.html
    assert privacy_section(None) == [] and soup_section(None, None) == []


def test_build_sections_returns_every_section_of_a_run_in_a_fixed_order(tmp_path: Path) -> None:
    prepared = SimpleNamespace(
        column_types={"a": "numeric"}, splits={"train": [], "validation": [], "test": []}, summary={}, labels=None
    )
    job = SimpleNamespace(task="classification", training=SimpleNamespace(seed=0))
    sections = build_sections(job=job, run_dir=tmp_path, metrics=METRICS, prepared=prepared, predictions={})
    assert [s.title for s in sections] == ["Privacy", "Model soup", "Fairness"]
    # the same call twice gives the same sections: nothing accumulates in a registry between runs
    again = build_sections(job=job, run_dir=tmp_path, metrics=METRICS, prepared=prepared, predictions={})
    assert [s.title for s in again] == ["Privacy", "Model soup", "Fairness"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_lower_layer_imports_the_pipeline_and_training_builds_no_html() -> None:
    """Before: fairness, explain, text_report, privacy and soup imported `shipyard.pipeline` to register a hook,
    and privacy / soup imported the report's HTML helpers."""
    lower = ("training", "evaluation", "models", "data")  # config's Job.run is another change of issue #13
    offenders = [
        str(p.relative_to(SRC))
        for folder in lower
        for p in sorted((SRC / folder).rglob("*.py"))
        if any(name == "shipyard.pipeline" or name.startswith("shipyard.pipeline.") for name in _imports(p))
    ]
    assert offenders == []
    for p in sorted((SRC / "training").rglob("*.py")):
        assert not any(n.startswith("shipyard.evaluation.report") for n in _imports(p)), p
    for p in sorted((SRC / "evaluation").rglob("*.py")):
        assert not any(n.startswith(("shipyard.training", "shipyard.pipeline")) for n in _imports(p)), p
