"""Group fairness: per-group metrics with Fairlearn's ``MetricFrame``, gap flags, and post-processing mitigation.

Configured by ``evaluation.sensitive_features`` (columns that may be left out of the model's inputs with
``data.features`` / ``data.drop_columns``: the data layer carries them in each split's ``frame`` anyway) and,
optionally, ``evaluation.fairness_thresholds``::

    evaluation:
      sensitive_features: [sex, race]
      fairness_thresholds: {demographic_parity_difference: 0.1, equalized_odds_difference: 0.1,
                            selection_rate_ratio: 0.8, accuracy_gap: 0.05, min_group_size: 30}

For binary classification (the positive class is the second label in sorted order, e.g. ``>50K``) and each
sensitive column, on the test split (the validation split when there is no test split):

- per group: n, accuracy, selection rate (share predicted positive), TPR, FPR (``MetricFrame``);
- demographic-parity difference / ratio and equalised-odds difference / ratio (``fairlearn.metrics``);
- flags: a column whose DP or EO difference exceeds its threshold, and groups whose selection rate is below
  ``selection_rate_ratio`` times the highest group's (the "four-fifths" rule) or whose accuracy is more than
  ``accuracy_gap`` below the overall accuracy. Groups smaller than ``min_group_size`` are reported but not
  flagged (their rates are too noisy to act on).
- mitigation: Fairlearn's ``ThresholdOptimizer`` (prefit, demographic-parity constraint) on the model's
  positive-class score, fitted on the validation split and measured on the test split, for the first sensitive
  column: accuracy and DP / EO differences before and after, and selection rates per group.

Everything lands in ``metrics.json`` under ``fairness``, in a report section with a chart, and (condensed) in the
model card.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.errors import validate_section
from shipyard.config.evaluation import FairnessThresholds
from shipyard.data.types import require_columns
from shipyard.evaluation.metrics import to_probabilities
from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html

log = logging.getLogger(__name__)

__all__ = [
    "FairnessThresholds",
    "card_summary",
    "fairness_metrics",
    "group_report",
    "mitigate_threshold",
    "report_sections",
]

MISSING_GROUP = "(missing)"


def parse_thresholds(raw: dict[str, Any] | FairnessThresholds | None) -> FairnessThresholds:
    return validate_section(
        FairnessThresholds,
        raw,
        where="evaluation.fairness_thresholds",
        hint="keys: " + ", ".join(FairnessThresholds.model_fields),
    )


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return round(v, 6) if np.isfinite(v) else None


def _groups(series: pd.Series) -> np.ndarray:
    return series.astype(object).where(series.notna(), MISSING_GROUP).astype(str).to_numpy()


def group_report(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: np.ndarray, thresholds: FairnessThresholds | None = None
) -> dict[str, Any]:
    """Per-group accuracy / selection rate / TPR / FPR, DP and EO difference and ratio, and flags, for binary
    0/1 ``y_true`` / ``y_pred`` and one array of group names."""
    # heavy: fairlearn, only for a fairness report
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score  # scikit-learn: with fairlearn, only for a fairness report

    th = thresholds or FairnessThresholds()
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    sensitive = np.asarray(sensitive).astype(str)
    frame = MetricFrame(
        metrics={
            "n": count,
            "accuracy": accuracy_score,
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=pd.Series(sensitive, name="group"),
    )
    by_group = frame.by_group
    overall = {k: _f(v) for k, v in frame.overall.items()}
    overall["n"] = len(y_true)
    groups: dict[str, dict[str, Any]] = {}
    for name, row in by_group.iterrows():
        groups[str(name)] = {k: (int(v) if k == "n" else _f(v)) for k, v in row.items()}
    kw = {"y_true": y_true, "y_pred": y_pred, "sensitive_features": sensitive}
    out: dict[str, Any] = {
        "overall": overall,
        "groups": groups,
        "demographic_parity_difference": _f(demographic_parity_difference(**kw)),
        "demographic_parity_ratio": _f(demographic_parity_ratio(**kw)),
        "equalized_odds_difference": _f(equalized_odds_difference(**kw)),
        "equalized_odds_ratio": _f(equalized_odds_ratio(**kw)),
    }
    flags: list[str] = []
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        value = out[key]
        if value is not None and value > getattr(th, key):
            flags.append(f"{key} {value:.3f} > {getattr(th, key)}")
    big = {g: v for g, v in groups.items() if v["n"] >= th.min_group_size}
    top_rate = max((v["selection_rate"] or 0.0 for v in big.values()), default=0.0)
    flagged_groups: dict[str, list[str]] = {}
    for g, v in big.items():
        reasons = []
        rate = v["selection_rate"] or 0.0
        if top_rate > 0 and rate / top_rate < th.selection_rate_ratio:
            reasons.append(f"selection rate {rate:.3f} is {rate / top_rate:.2f}x the highest group's")
        acc, overall_acc = v["accuracy"], overall.get("accuracy")
        if acc is not None and overall_acc is not None and overall_acc - acc > th.accuracy_gap:
            reasons.append(f"accuracy {acc:.3f} is {overall_acc - acc:.3f} below overall")
        if reasons:
            flagged_groups[g] = reasons
    out["small_groups"] = sorted(g for g, v in groups.items() if v["n"] < th.min_group_size)
    out["flags"] = flags
    out["flagged_groups"] = flagged_groups
    return out


def _score_model() -> Any:
    """A 'prefit' estimator whose prediction is its single input column: lets ThresholdOptimizer work on the
    model's stored scores without re-running the network."""
    from sklearn.base import BaseEstimator, ClassifierMixin  # scikit-learn: only for mitigation

    class ScoreModel(ClassifierMixin, BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> Any:
            self.classes_ = np.array([0, 1])
            return self

        def predict(self, X: Any) -> np.ndarray:
            return np.asarray(X, dtype=float)[:, 0]

        def __sklearn_is_fitted__(self) -> bool:
            return True

    return ScoreModel().fit(None)


def mitigate_threshold(
    fit_scores: np.ndarray,
    fit_y: np.ndarray,
    fit_groups: np.ndarray,
    eval_scores: np.ndarray,
    eval_y: np.ndarray,
    eval_groups: np.ndarray,
    *,
    constraint: str = "demographic_parity",
    seed: int = 0,
) -> dict[str, Any]:
    """ThresholdOptimizer (prefit) on positive-class scores; before/after accuracy, DP and EO differences and
    per-group selection rates on the evaluation data. Returns also the mitigated predictions (``"y_pred"``)."""
    # heavy: fairlearn, only for mitigation
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
    from fairlearn.postprocessing import ThresholdOptimizer  # heavy: fairlearn

    opt = ThresholdOptimizer(
        estimator=_score_model(),
        constraints=constraint,
        prefit=True,
        predict_method="predict",
        objective="accuracy_score",
    )
    opt.fit(np.asarray(fit_scores, float).reshape(-1, 1), np.asarray(fit_y).astype(int), sensitive_features=fit_groups)
    before = (np.asarray(eval_scores) >= 0.5).astype(int)
    after = np.asarray(
        opt.predict(np.asarray(eval_scores, float).reshape(-1, 1), sensitive_features=eval_groups, random_state=seed)
    ).astype(int)
    eval_y = np.asarray(eval_y).astype(int)

    def figures(pred: np.ndarray) -> dict[str, Any]:
        rates = pd.Series(pred).groupby(pd.Series(eval_groups)).mean()
        return {
            "accuracy": _f((pred == eval_y).mean()),
            "demographic_parity_difference": _f(
                demographic_parity_difference(eval_y, pred, sensitive_features=eval_groups)
            ),
            "equalized_odds_difference": _f(equalized_odds_difference(eval_y, pred, sensitive_features=eval_groups)),
            "selection_rate": {str(k): _f(v) for k, v in rates.items()},
        }

    return {
        "method": "ThresholdOptimizer",
        "constraint": constraint,
        "before": figures(before),
        "after": figures(after),
        "y_pred": after,
    }


def _binary_scores(outputs: np.ndarray) -> np.ndarray:
    return to_probabilities(outputs)[:, 1]


def fairness_metrics(job: Any, prepared: Any, predictions: dict[str, np.ndarray]) -> dict[str, Any]:
    """The ``fairness`` block of metrics.json for a run (see the module docstring)."""
    features = list(job.evaluation.sensitive_features)
    th = parse_thresholds(job.evaluation.fairness_thresholds)
    if job.task != "classification" or len(prepared.labels or []) != 2:
        return {
            "skipped": "group fairness metrics are computed for binary classification only",
            "sensitive_features": features,
        }
    split_name = "test" if "test" in predictions else "validation" if "validation" in predictions else None
    if split_name is None:
        return {"skipped": "no test or validation predictions", "sensitive_features": features}
    split = prepared.splits[split_name]
    frame = split.frame.reset_index(drop=True)
    require_columns(frame, features, field="evaluation.sensitive_features")
    y_true = np.asarray(split.target).astype(int)
    scores = _binary_scores(predictions[split_name])
    y_pred = (scores >= 0.5).astype(int)
    out: dict[str, Any] = {
        "split": split_name,
        "positive_label": str(prepared.labels[1]),
        "sensitive_features": features,
        "used_as_model_inputs": [c for c in features if c in prepared.preprocessor.features],
        "thresholds": th.model_dump(),
        "by_feature": {},
    }
    for col in features:
        out["by_feature"][col] = group_report(y_true, y_pred, _groups(frame[col]), th)
    out["flags"] = [f"{c}: {f}" for c, r in out["by_feature"].items() for f in r["flags"]] + [
        f"{c}={g}: {'; '.join(reasons)}"
        for c, r in out["by_feature"].items()
        for g, reasons in r["flagged_groups"].items()
    ]
    # mitigation: fit the thresholds on validation scores, measure on the test split
    col = features[0]
    fit_name = "validation" if split_name == "test" and "validation" in predictions else split_name
    fit_split = prepared.splits[fit_name]
    try:
        mit = mitigate_threshold(
            _binary_scores(predictions[fit_name]),
            fit_split.target,
            _groups(fit_split.frame.reset_index(drop=True)[col]),
            scores,
            y_true,
            _groups(frame[col]),
            seed=int(job.training.seed),
        )
        mit.pop("y_pred")
        mit.update({"sensitive_feature": col, "fitted_on": fit_name, "measured_on": split_name})
        out["mitigation"] = mit
    except Exception as exc:  # e.g. a group present in test but absent from validation
        log.warning("fairness mitigation skipped: %s", exc)
        out["mitigation"] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
    log.info("fairness: %d flag(s) over %s", len(out["flags"]), features)
    return out


def card_summary(fairness: dict[str, Any] | None) -> dict[str, Any] | None:
    """A compact version of the ``fairness`` block for the model card."""
    if not fairness:
        return None
    if "skipped" in fairness:
        return {"not assessed": fairness["skipped"]}
    out: dict[str, Any] = {
        "measured on": f"{fairness['split']} split, positive class {fairness['positive_label']!r}",
        "sensitive features used as model inputs": fairness.get("used_as_model_inputs") or "none",
    }
    for col, r in fairness["by_feature"].items():
        out[col] = {
            "demographic parity difference / ratio": f"{r['demographic_parity_difference']} / "
            f"{r['demographic_parity_ratio']}",
            "equalised odds difference / ratio": f"{r['equalized_odds_difference']} / {r['equalized_odds_ratio']}",
            "selection rate, TPR, FPR, accuracy by group": {
                g: f"n={v['n']}, sel={v['selection_rate']}, tpr={v['tpr']}, fpr={v['fpr']}, acc={v['accuracy']}"
                for g, v in r["groups"].items()
            },
        }
    out["flags"] = fairness.get("flags") or "none"
    mit = fairness.get("mitigation") or {}
    if "before" in mit:
        out["mitigation (ThresholdOptimizer, demographic parity)"] = {
            "feature": mit["sensitive_feature"],
            "accuracy before / after": f"{mit['before']['accuracy']} / {mit['after']['accuracy']}",
            "DP difference before / after": f"{mit['before']['demographic_parity_difference']} / "
            f"{mit['after']['demographic_parity_difference']}",
        }
    return out


# ---------------------------------------------------------------------------------------------------- report


def _chart(col: str, report: dict[str, Any]) -> str:
    groups = list(report["groups"])
    keys = ["selection_rate", "tpr", "fpr", "accuracy"]
    fig = new_figure(max(6.0, 1.0 + 0.9 * len(groups)), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(keys)
    x = np.arange(len(groups))
    for i, key in enumerate(keys):
        vals = [report["groups"][g][key] or 0.0 for g in groups]
        ax.bar(x + (i - 1.5) * width, vals, width, label=key)
    ax.set_xticks(x)
    ax.set_xticklabels([g.replace("$", r"\$")[:18] for g in groups], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"per-group rates: {col}".replace("$", r"\$"))
    ax.legend(fontsize=7, ncol=4)
    return figure_to_img_tag(fig, alt=f"per-group rates by {col}")


def report_sections(*, job: Any, run_dir: Any, metrics: dict[str, Any], prepared: Any, predictions: Any) -> list[Any]:
    fairness = metrics.get("fairness")
    if not fairness:
        return []
    if "skipped" in fairness:
        return [ReportSection("Fairness", f"<p>Not assessed: {html.escape(fairness['skipped'])}</p>")]
    parts = [
        f"<p>Measured on the {html.escape(fairness['split'])} split; positive class "
        f"<code>{html.escape(fairness['positive_label'])}</code>. Sensitive features used as model inputs: "
        f"{html.escape(', '.join(fairness['used_as_model_inputs']) or 'none')}.</p>"
    ]
    for col, r in fairness["by_feature"].items():
        parts.append(f"<h3>{html.escape(col)}</h3>")
        parts.append(
            table_html(
                [
                    {
                        "demographic parity difference": r["demographic_parity_difference"],
                        "demographic parity ratio": r["demographic_parity_ratio"],
                        "equalised odds difference": r["equalized_odds_difference"],
                        "equalised odds ratio": r["equalized_odds_ratio"],
                    }
                ]
            )
        )
        parts.append(table_html([{"group": g, **v} for g, v in r["groups"].items()]))
        parts.append(_chart(col, r))
    flags = fairness.get("flags") or []
    parts.append(
        "<p><b>Flags:</b> none</p>"
        if not flags
        else "<p><b>Flags:</b></p><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in flags) + "</ul>"
    )
    mit = fairness.get("mitigation") or {}
    if "before" in mit:
        parts.append(
            f"<h3>Mitigation: ThresholdOptimizer ({html.escape(mit['constraint'])}) on "
            f"{html.escape(mit['sensitive_feature'])}</h3><p>Group thresholds fitted on the "
            f"{html.escape(mit['fitted_on'])} split, measured on the {html.escape(mit['measured_on'])} split.</p>"
        )
        rows = []
        for stage in ("before", "after"):
            m = mit[stage]
            rows.append(
                {
                    "": stage,
                    "accuracy": m["accuracy"],
                    "demographic parity difference": m["demographic_parity_difference"],
                    "equalised odds difference": m["equalized_odds_difference"],
                    **{f"selection rate {g}": v for g, v in m["selection_rate"].items()},
                }
            )
        parts.append(table_html(rows))
    elif mit:
        parts.append(f"<p>Mitigation skipped: {html.escape(str(mit.get('skipped')))}</p>")
    return [ReportSection("Fairness", "".join(parts))]
