"""The report sections of one run, built from plain data: ``metrics.json``'s contents, the prepared splits and
the predictions.

Training returns data (the privacy spent, a soup's ingredients, ...) and never HTML; this module is the one place
that decides which extra sections a run's report gets and in which order. :func:`build_sections` is what the
pipeline calls; each ``*_section`` function returns a list (empty when the run has nothing to show).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.evaluation import explain, fairness, text_report, tree_report
from shipyard.evaluation.report import ReportSection, table_html

__all__ = ["build_sections", "privacy_section", "soup_section"]


def privacy_section(privacy: Mapping[str, Any] | None) -> list[ReportSection]:
    """The "Privacy" section: the (epsilon, delta) spent by DP-SGD and how it was accounted (``metrics["privacy"]``)."""
    if not privacy:
        return []
    text = (
        f"<p>Trained with differential privacy: <b>(ε = {html.escape(str(privacy['epsilon']))}, "
        f"δ = {html.escape(str(privacy['delta']))})</b> at record level "
        f"({html.escape(str(privacy['accountant']).upper())} accountant, "
        f"target ε = {html.escape(str(privacy['target_epsilon']))}).</p>"
    )
    rows = [{"setting": k, "value": v} for k, v in privacy.items() if k != "mechanism"]
    return [ReportSection("Privacy", text + table_html(rows))]


def soup_section(soup: Mapping[str, Any] | None, validation: Mapping[str, Any] | None) -> list[ReportSection]:
    """The "Model soup" section: every ingredient's settings and validation score, and which ones the soup averages
    (``metrics["training"]["soup"]``; ``validation`` is the soup's own validation metrics)."""
    if not soup:
        return []
    key = f"val_{soup['metric']}"
    rows = [
        {
            "ingredient": r["ingredient"],
            "in the soup": "yes" if r["ingredient"] in soup["chosen"] else "no",
            "seed": r["seed"],
            "learning rate": r["learning_rate"],
            "epochs (best)": f"{r['epochs']} ({r['best_epoch']})",
            f"validation {soup['metric']}": r.get(key),
        }
        for r in soup["ingredients"]
    ]
    score = (validation or {}).get(soup["metric"])
    text = (
        f"<p>A {html.escape(soup['method'])} soup: the model is the average of the weights of ingredients "
        f"{html.escape(', '.join(str(i) for i in soup['chosen']))}, each fine-tuned from the same start"
        + (f"; validation {html.escape(soup['metric'])} of the soup <b>{score:.4f}</b>" if score else "")
        + ".</p>"
    )
    return [ReportSection("Model soup", text + table_html(rows))]


def build_sections(
    *, job: Any, run_dir: Path, metrics: Mapping[str, Any], prepared: Any, predictions: Mapping[str, Any]
) -> list[ReportSection]:
    """The extra report sections of a finished run, in a fixed order: privacy, model soup, fairness, text, trees,
    explanations."""
    sections = privacy_section(metrics.get("privacy"))
    sections += soup_section((metrics.get("training") or {}).get("soup"), metrics.get("validation"))
    kwargs = {"job": job, "run_dir": run_dir, "metrics": metrics, "prepared": prepared, "predictions": predictions}
    sections += fairness.report_sections(**kwargs)
    sections += text_report.report_sections(**kwargs)
    sections += tree_report.report_sections(**kwargs)  # importance and SHAP of a tree model
    sections += explain.report_sections(**kwargs)
    return sections
