"""The report section of a tree model: feature importance (gain, splits) and a SHAP summary.

SHAP values are exact TreeSHAP (Lundberg et al. 2020) from LightGBM itself (``pred_contrib``), the algorithm
``shap.TreeExplainer`` runs, without the extra dependency. The summary explains the positive class's logit for a
binary task, the predicted class's logit for a multi-class one and the value for regression, on up to
``MAX_ROWS`` test rows: mean |SHAP| per column (the global importance) and a beeswarm (each row's SHAP value,
coloured by the column's value rank: red high, blue low).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html

log = logging.getLogger(__name__)

MAX_ROWS = 2000
TOP = 15


def shap_matrix(model: Any, x: np.ndarray, task: str) -> np.ndarray:
    """(N, F) SHAP values of what the summary explains (see the module docstring)."""
    contrib = model.contributions(x)[:, :, :-1]  # drop the expected value
    if task == "regression":
        return contrib[:, 0, :]
    if contrib.shape[1] == 2:
        return contrib[:, 1, :]
    predicted = model.raw_scores(x).argmax(axis=1)
    return contrib[np.arange(len(x)), predicted, :]


def tree_attributions(model: Any, x: np.ndarray, groups: list[tuple[str, list[int]]], target: np.ndarray) -> Any:
    """TreeSHAP toward each row's explained class. A binary model has one margin m (logits [0, m]), so toward
    class 0 the attributions are those of -m."""
    contrib = model.contributions(np.asarray(x))[:, :, :-1]  # (N, outputs, F), the expected value dropped
    rows = np.arange(len(x))
    if contrib.shape[1] == 2:
        attr = contrib[:, 1, :] * np.where(target == 1, 1.0, -1.0)[:, None]
    else:
        attr = contrib[rows, target if contrib.shape[1] > 1 else 0, :]
    return np.stack([attr[:, idx].sum(axis=1) for _, idx in groups], axis=1)


def summary_rows(model: Any, x: np.ndarray, task: str, names: list[str]) -> list[dict[str, Any]]:
    """Per column: mean |SHAP|, gain share and split count, largest mean |SHAP| first."""
    shap = shap_matrix(model, x, task)
    imp = model.importance()
    gain = imp["gain"] / max(float(imp["gain"].sum()), 1e-12)
    rows = [
        {
            "column": name,
            "mean |SHAP|": float(np.abs(shap[:, j]).mean()) if len(shap) else 0.0,
            "gain share": float(gain[j]),
            "splits": int(imp["split"][j]),
        }
        for j, name in enumerate(names)
    ]
    return sorted(rows, key=lambda r: -r["mean |SHAP|"])


def _beeswarm(shap: np.ndarray, x: np.ndarray, names: list[str], order: list[int]) -> str:
    rng = np.random.default_rng(0)
    fig = new_figure(7.0, max(2.5, 0.35 * len(order) + 1))
    ax = fig.add_subplot(1, 1, 1)
    for pos, j in enumerate(reversed(order)):
        values = x[:, j]
        rank = np.argsort(np.argsort(values)) / max(len(values) - 1, 1)
        jitter = rng.uniform(-0.3, 0.3, size=len(values))
        ax.scatter(shap[:, j], pos + jitter, c=rank, cmap="coolwarm", s=4, alpha=0.6, linewidths=0)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([names[j].replace("$", r"\$")[:28] for j in reversed(order)])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("SHAP value (contribution to the logit / value)")
    fig.tight_layout()
    return figure_to_img_tag(fig, alt="SHAP summary")


def section_html(model: Any, x: np.ndarray, task: str, names: list[str]) -> str:
    if len(x) > MAX_ROWS:
        x = x[np.random.default_rng(0).choice(len(x), MAX_ROWS, replace=False)]
    rows = summary_rows(model, x, task, names)
    top = rows[:TOP]
    index = {n: j for j, n in enumerate(names)}
    order = [index[r["column"]] for r in top]
    what = {"regression": "the predicted value", "binary": "the positive class's logit"}.get(
        task if task == "regression" else ("binary" if model.spec.n_outputs == 2 else ""), "the predicted class's logit"
    )
    parts = [
        f"<p>{model.n_trees} trees (best boosting round {model.best_iteration}). SHAP values: exact TreeSHAP of "
        f"{html.escape(what)} on {len(x)} test rows.</p>",
        "<h3>SHAP summary</h3>",
        _beeswarm(shap_matrix(model, x, task), x, names, order),
        "<h3>Feature importance</h3>",
        table_html(top),
    ]
    return "".join(parts)


def report_sections(*, job: Any, run_dir: Any, metrics: Any, prepared: Any, predictions: Any) -> list[ReportSection]:
    """The "Trees" section when the run's model is a tree model (else nothing)."""
    if getattr(getattr(job, "model", None), "type", None) != "lightgbm":
        return []
    from shipyard.artifact import Artifact

    try:
        art = Artifact.load(Path(run_dir) / "model", allow_incomplete=True)
        split = prepared.splits["test"] if len(prepared.splits["test"]) else prepared.splits["validation"]
        body = section_html(art.model, split.inputs["x"], job.task, prepared.preprocessor.feature_names)
    except Exception as exc:  # a plot must never cost a run its report
        log.warning("tree section skipped: %s: %s", type(exc).__name__, exc)
        body = f"<p>Tree summary unavailable: {html.escape(type(exc).__name__)}: {html.escape(str(exc)[:300])}</p>"
    return [ReportSection("Trees: feature importance and SHAP", body)]
