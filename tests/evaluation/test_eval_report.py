"""The HTML report: sections, embedded images, no external URLs, escaping, atomic write."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from shipyard.evaluation.metrics import compute_metrics
from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html, write_report

EVIL = "<script>alert('x')</script>"


def _train_log() -> list[dict]:
    log: list[dict] = []
    step = 0
    for epoch in range(3):
        for _ in range(4):
            step += 1
            log.append({"event": "step", "epoch": epoch, "step": step, "loss": 1.0 / step, "lr": 1e-3})
        log.append(
            {
                "event": "epoch",
                "epoch": epoch,
                "step": step,
                "train_loss": 0.9 - epoch * 0.1,
                "val_loss": 1.0 - epoch * 0.1,
                "val_accuracy": 0.5 + epoch * 0.1,
                "best": epoch == 2,
            }
        )
    return log


def _classification_inputs(n_classes: int = 3, labels: list[str] | None = None) -> dict:
    rng = np.random.default_rng(0)
    y = np.arange(60) % n_classes
    logits = rng.normal(size=(60, n_classes))
    logits[np.arange(60), y] += 1.5
    labels = labels or [f"class {i}" for i in range(n_classes)]
    test = compute_metrics("classification", y, logits, labels)
    return {
        "job_config": {
            "task": "classification",
            "name": "iris <b>demo</b>",
            "model": {"type": "mlp", "hidden": [8]},
            "training": {"seed": 7, "betas": (0.9, 0.999)},
        },
        "metrics": {"validation": test, "test": test},
        "summary": {
            "rows": 60,
            "columns": {"a": {"type": "numeric", "missing": 0}, "b": {"type": "categorical", "missing": 2}},
            "splits": {"train": 40, "validation": 10, "test": 10},
            "levels": ["x", "y"],
        },
        "train_log": _train_log(),
        "test_predictions": {"y_true": y, "outputs": logits, "labels": labels},
    }


def _img_count(page: str) -> int:
    return len(re.findall(r'<img (?:class="wide" )?src="data:image/png;base64,[A-Za-z0-9+/=]+"', page))


def test_classification_report_sections_and_images(tmp_path: Path) -> None:
    path = write_report(tmp_path, **_classification_inputs())
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")
    for heading in (
        "Metrics",
        "Learning curves",
        "Confusion matrix",
        "Per-class metrics",
        "Calibration",
        "Data summary",
        "Configuration",
    ):
        assert f"<h2>{heading}" in page, heading
    # step curves, epoch curves, confusion matrix, reliability diagram
    assert _img_count(page) == 4
    assert "data:image/png;base64" in page
    assert "val_accuracy" in page and "class 1" in page
    assert "iris &lt;b&gt;demo&lt;/b&gt;" in page and "<b>demo" not in page
    assert "seed: 7" in page  # config rendered as YAML (the tuple became a list)


def test_no_external_urls(tmp_path: Path) -> None:
    page = write_report(tmp_path, **_classification_inputs()).read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "//" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    for src in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert src.startswith(("data:", "#")), src


def test_label_script_is_escaped(tmp_path: Path) -> None:
    inputs = _classification_inputs(labels=["cat", EVIL, "dog"])
    inputs["summary"]["columns"][EVIL] = {"type": EVIL}
    inputs["job_config"]["data"] = {"target": EVIL}
    extra = ReportSection(title=EVIL, html=table_html([{"col": EVIL}]))
    page = write_report(tmp_path, extra_sections=[extra], **inputs).read_text(encoding="utf-8")
    assert "<script" not in page
    assert "&lt;script&gt;" in page


def test_many_classes_and_regression(tmp_path: Path) -> None:
    inputs = _classification_inputs(n_classes=100)
    inputs["test_predictions"]["outputs"] = np.random.default_rng(1).dirichlet(np.ones(100), size=60)  # proba
    page = write_report(tmp_path / "cls", **inputs).read_text(encoding="utf-8")
    # past 30 classes a matrix image is unreadable (151 classes made a 2710x2455 image): the top confusions instead
    assert "<h2>Top confusions (test)" in page and "<h2>Confusion matrix" not in page
    assert "most frequent confusions" in page and "share of true class" in page
    assert _img_count(page) == 3

    inputs = _classification_inputs(n_classes=25)
    page = write_report(tmp_path / "cls25", **inputs).read_text(encoding="utf-8")
    assert "<h2>Confusion matrix" in page and "per-cell counts are hidden" in page

    rng = np.random.default_rng(2)
    y = rng.normal(size=40)
    pred = y + rng.normal(scale=0.2, size=40)
    reg = compute_metrics("regression", y, pred, None)
    page = write_report(
        tmp_path / "reg",
        job_config={"task": "regression", "model": {"type": "linear"}},
        metrics={"test": reg},
        summary={},
        train_log=[],
        test_predictions={"y_true": y, "outputs": pred[:, None], "labels": None},
    ).read_text(encoding="utf-8")
    assert "<h2>Predictions and residuals" in page
    assert "Residual summary" in page and "rmse" in page
    assert "Confusion matrix" not in page
    assert _img_count(page) == 1


def test_missing_predictions_and_log_still_render(tmp_path: Path) -> None:
    page = write_report(
        tmp_path,
        job_config={"task": "classification", "model": {"type": "mlp"}},
        metrics={},
        summary={},
        train_log=[],
        test_predictions=None,
    ).read_text(encoding="utf-8")
    assert "No training log entries" in page and "No metrics recorded" in page


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_report(tmp_path, **_classification_inputs())
    write_report(tmp_path, **_classification_inputs())  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_failed_render_leaves_no_file(tmp_path: Path) -> None:
    inputs = _classification_inputs()
    inputs["test_predictions"]["y_true"] = inputs["test_predictions"]["y_true"][:5]
    with pytest.raises(Exception, match="targets"):
        write_report(tmp_path, **inputs)
    assert list(tmp_path.iterdir()) == []


def test_helpers() -> None:
    fig = new_figure(2, 2)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    tag = figure_to_img_tag(fig, alt='a "quoted" alt')
    assert tag.startswith('<img src="data:image/png;base64,') and "&quot;quoted&quot;" in tag
    table = table_html([{"name": "<x>", "score": 0.123456}, {"name": "y", "extra": [1, 2]}])
    assert "&lt;x&gt;" in table and "0.1235" in table and "<th>extra</th>" in table
    assert table_html([]) == ""
