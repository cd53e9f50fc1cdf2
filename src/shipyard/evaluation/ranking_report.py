"""The report section of a recommendation run: ranking quality against popularity, and what the lists do to the
catalogue (coverage, novelty, popularity bias) by user-activity bucket, as tables and plots."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from shipyard.evaluation.ranking import ACTIVITY_BUCKETS
from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html


def _quality_plot(test: Mapping[str, Any], baseline: Mapping[str, Any], k: int) -> str:
    names = [f"hr@{k}", f"ndcg@{k}", f"map@{k}", f"recall@{k}"]
    fig = new_figure(6.4, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [test.get(n, 0) for n in names], width=0.4, label="model")
    ax.bar([x + 0.2 for x in xs], [baseline.get(n, 0) for n in names], width=0.4, label="popularity")
    ax.set_xticks(list(xs), names)
    ax.set_title("Full-catalogue ranking quality on the test split")
    ax.legend()
    return figure_to_img_tag(fig, alt="ranking quality: model against popularity")


def _bias_plot(beyond: Mapping[str, Any]) -> str:
    fig = new_figure(6.4, 3.2)
    axes = fig.subplots(1, 2)
    by = beyond.get("by_activity", {})
    for ax, key, title in ((axes[0], "top10pct_share", "share of slots to the top 10 % items"),
                           (axes[1], "coverage", "catalogue coverage")):  # fmt: skip
        ax.bar(list(ACTIVITY_BUCKETS), [by.get(b, {}).get(key, 0) for b in ACTIVITY_BUCKETS])
        ax.axhline(beyond.get(key, 0), color="black", linewidth=1, linestyle="--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("user activity")
    return figure_to_img_tag(fig, alt="popularity bias and coverage by user activity")


def ranking_sections(metrics: Mapping[str, Any], k: int) -> list[ReportSection]:
    test = metrics.get("test") or {}
    if f"hr@{k}" not in test:
        return []
    baseline = (metrics.get("baseline") or {}).get("popularity") or {}
    keys = [f"hr@{k}", f"ndcg@{k}", f"map@{k}", f"recall@{k}", f"sampled_hr@{k}", f"sampled_ndcg@{k}", "rmse", "mae"]
    rows = [{"metric": n, "model": test.get(n), "popularity": baseline.get(n)} for n in keys if n in test]
    text = (
        f"<p>Each test user's list of {k} items is ranked over the <b>whole catalogue</b> (items the user already "
        f"had are excluded); <code>sampled_*</code> ranks the held-out item against "
        f"{html.escape(str(test.get('sampled_negatives', '')))} sampled unseen items instead, which flatters "
        "every model and is shown only for comparison with published figures.</p>"
    )
    beyond = test.get("beyond_accuracy") or {}
    bias_rows = [
        {"users": name, **{k2: v for k2, v in (beyond.get("by_activity", {}).get(name) or {}).items()}}
        for name in ("all", *ACTIVITY_BUCKETS)
    ]
    bias_rows[0] = {"users": "all", **{k2: v for k2, v in beyond.items() if k2 != "by_activity"}}
    bias = (
        "<p>Coverage: share of the catalogue recommended to anyone. Novelty: mean -log2 of the share of users who "
        "had each recommended item. Popularity bias: the share of recommendation slots that go to the 10 % most "
        "popular items, and the Gini coefficient of exposure over items (0: even, 1: one item gets all). Users are "
        "bucketed by terciles of their number of training events.</p>"
    )
    return [
        ReportSection("Ranking", text + table_html(rows) + _quality_plot(test, baseline, k)),
        ReportSection("Popularity bias and coverage", bias + table_html(bias_rows) + _bias_plot(beyond)),
    ]
