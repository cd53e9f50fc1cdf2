"""A run's report.html and model_card.md, written together from what the run measured.

The pipeline calls it after training and ``shipyard data forget`` after an erasure (with the erasure's note as an
extra section and a limitation), so both write the same pages the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.schema import Job
from shipyard.evaluation.fairness import card_summary
from shipyard.evaluation.model_card import write_model_card
from shipyard.evaluation.report import ReportSection, write_report
from shipyard.evaluation.sections import build_sections

__all__ = ["write_run_report"]


def write_run_report(
    job: Job,
    run_dir: Path,
    metrics: dict[str, Any],
    prepared: Any,
    train_log: list[dict[str, Any]],
    predictions: dict[str, np.ndarray],
    test: Any,
    sections: list[ReportSection] | None = None,
    limitations: list[str] | None = None,
) -> Path:
    """Write the run's report (the standard sections, then ``sections``) and its model card; the report's path.

    ``prepared`` is the run's PreparedData (summary, labels), ``test`` its test split (its ``target``);
    ``limitations`` are added to the card's own."""
    extra_sections = list(sections or [])
    extra_sections += build_sections(
        job=job, run_dir=run_dir, metrics=metrics, prepared=prepared, predictions=predictions
    )  # privacy, soup, fairness, text, explanations
    test_predictions = {
        "y_true": test.target,
        "outputs": predictions.get("test", np.zeros((0,))),
        "labels": prepared.labels,
    }
    config = job.model_dump(mode="json")
    path = write_report(
        run_dir,
        job_config=config,
        metrics=metrics,
        summary=prepared.summary,
        train_log=train_log,
        test_predictions=test_predictions,
        extra_sections=extra_sections,
    )
    # privacy / fairness figures for the card
    extra: dict[str, Any] = {"privacy": metrics.get("privacy"), "fairness": card_summary(metrics.get("fairness"))}
    extra = {k: v for k, v in extra.items() if v}
    if limitations:
        extra["limitations"] = list(limitations)
    write_model_card(run_dir, job_config=config, metrics=metrics, summary=prepared.summary, extra=extra)
    return path
