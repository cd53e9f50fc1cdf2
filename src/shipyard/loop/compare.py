"""Champion / challenger: compared on the same rows, with a paired significance test, and a decision.

Slices:
- ``holdout``: the champion's run's own test split (``splits/test.parquet``): fixed, never trained on by either.
- ``feedback``: logged inputs whose feedback gives the true label or value and arrived after ``feedback_since``
  (the challenger's training cut-off, so it is never scored on rows it learnt from).
- ``shadow``: the same feedback rows where the server scored the challenger in shadow mode on live traffic: its
  recorded answers, not a re-scoring.

Tests: McNemar's exact test (a binomial test on the rows exactly one model gets right) for classification; a
paired bootstrap of the mean absolute error difference for regression. The rule (:func:`decide`): the deciding
slice is ``feedback`` when it has ``min_feedback`` rows, else ``holdout``; the challenger must beat the champion
there by at least ``margin`` with p < ``alpha``; when feedback decides, it may lose at most ``holdout_tolerance``
on the holdout; and on no slice may it be significantly worse. Anything else keeps the champion.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from shipyard.config.loop import PromotionConfig
from shipyard.errors import ShipyardError
from shipyard.loop.feedback import labelled_rows
from shipyard.loop.monitor import run_folder_of
from shipyard.store.runs import RunStore

logger = logging.getLogger(__name__)


@dataclass
class SliceResult:
    name: str
    n: int
    metric: str  # accuracy | neg_mae
    champion: float
    challenger: float
    diff: float  # challenger - champion (higher is better for both metrics)
    p_value: float
    test: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    slices: list[SliceResult]
    deciding: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reasons": self.reasons,
            "deciding": self.deciding,
            "slices": [asdict(s) for s in self.slices],
        }


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """Rows only A gets right, rows only B gets right, and the exact two-sided p-value."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(errors_a: np.ndarray, errors_b: np.ndarray, *, rounds: int, seed: int) -> tuple[float, float]:
    """Mean of (|err_a| - |err_b|) (positive: B better) and its two-sided bootstrap p-value."""
    delta = np.abs(np.asarray(errors_a, float)) - np.abs(np.asarray(errors_b, float))
    observed = float(delta.mean())
    rng = np.random.default_rng(seed)
    means = np.array([delta[rng.integers(0, len(delta), len(delta))].mean() for _ in range(rounds)])
    # share of resamples on the other side of zero, doubled: how often the sign of the gain is a resampling accident
    tail = np.mean(means <= 0) if observed > 0 else np.mean(means >= 0)
    return observed, float(min(1.0, 2 * tail + 1.0 / rounds))


def compare_slice(
    name: str, task: str, y_true: Any, champion: Any, challenger: Any, cfg: PromotionConfig
) -> SliceResult:
    """Both models' predictions on the same rows: labels (classification) or values (regression)."""
    y = np.asarray(y_true)
    if task == "classification":
        y = y.astype(str)
        right_a = np.asarray(champion).astype(str) == y
        right_b = np.asarray(challenger).astype(str) == y
        only_a, only_b, p = mcnemar(right_a, right_b)
        acc_a, acc_b = float(right_a.mean()), float(right_b.mean())
        return SliceResult(
            name,
            len(y),
            "accuracy",
            acc_a,
            acc_b,
            acc_b - acc_a,
            p,
            "mcnemar",
            {"only_champion": only_a, "only_challenger": only_b},
        )
    y = y.astype(float)
    err_a = np.asarray(champion, float) - y
    err_b = np.asarray(challenger, float) - y
    gain, p = paired_bootstrap(err_a, err_b, rounds=cfg.bootstrap, seed=cfg.seed)
    mae_a, mae_b = float(np.abs(err_a).mean()), float(np.abs(err_b).mean())
    return SliceResult(name, len(y), "neg_mae", -mae_a, -mae_b, gain, p, "paired_bootstrap", {"rounds": cfg.bootstrap})


def decide(slices: list[SliceResult], cfg: PromotionConfig) -> Decision:
    by_name = {s.name: s for s in slices if s.n > 0}
    reasons: list[str] = []
    feedback = by_name.get("feedback")
    if feedback is not None and feedback.n >= cfg.min_feedback:
        deciding = feedback
    elif "holdout" in by_name:
        deciding = by_name["holdout"]
    else:
        return Decision(False, ["no rows to compare on: neither a holdout nor enough feedback"], slices, None)
    ok = True
    if deciding.diff < cfg.margin or deciding.diff <= 0:
        ok = False
        reasons.append(
            f"{deciding.name}: challenger {deciding.metric} {deciding.challenger:.4f} vs champion "
            f"{deciding.champion:.4f} (diff {deciding.diff:+.4f}) is not better by the margin {cfg.margin}"
        )
    elif deciding.p_value >= cfg.alpha:
        ok = False
        reasons.append(
            f"{deciding.name}: the gain {deciding.diff:+.4f} is not significant ({deciding.test} p = "
            f"{deciding.p_value:.3g} >= {cfg.alpha}, n = {deciding.n})"
        )
    else:
        reasons.append(
            f"{deciding.name}: challenger better by {deciding.diff:+.4f} {deciding.metric} "
            f"({deciding.test} p = {deciding.p_value:.3g}, n = {deciding.n})"
        )
    holdout = by_name.get("holdout")
    if holdout is not None and deciding is not holdout and holdout.diff < -cfg.holdout_tolerance:
        ok = False
        reasons.append(
            f"holdout: challenger loses {-holdout.diff:.4f} {holdout.metric}, more than the tolerance "
            f"{cfg.holdout_tolerance}"
        )
    for s in slices:
        if s.n > 0 and s.diff < 0 and s.p_value < cfg.alpha and s is not deciding:
            ok = False
            reasons.append(f"{s.name}: challenger significantly worse ({s.diff:+.4f}, p = {s.p_value:.3g})")
    return Decision(ok, reasons, slices, deciding.name)


def _predictions(artifact: Any, frame: pd.DataFrame) -> np.ndarray:
    out = artifact.predict_frame(frame)
    return np.asarray(out["label"] if artifact.task == "classification" else out["value"])


def compare_models(
    champion: Any,
    challenger: Any,
    *,
    holdout: pd.DataFrame | None,
    feedback_rows: pd.DataFrame | None,
    cfg: PromotionConfig,
) -> Decision:
    """Score both artefacts (``shipyard.artifact.Artifact``) on each slice and apply :func:`decide`.

    ``holdout`` has the features and the target column; ``feedback_rows`` is
    :func:`shipyard.loop.feedback.labelled_rows` output (inputs, ``_target``, ``_shadow``).
    """
    task = champion.task
    target = champion.meta.get("target")
    slices: list[SliceResult] = []
    if holdout is not None and len(holdout):
        y = holdout[target]
        slices.append(
            compare_slice("holdout", task, y, _predictions(champion, holdout), _predictions(challenger, holdout), cfg)
        )
    if feedback_rows is not None and len(feedback_rows):
        y = feedback_rows["_target"]
        slices.append(
            compare_slice(
                "feedback", task, y, _predictions(champion, feedback_rows), _predictions(challenger, feedback_rows), cfg
            )
        )
        shadowed = feedback_rows[feedback_rows["_shadow"].notna()] if "_shadow" in feedback_rows else feedback_rows[:0]
        if len(shadowed):
            key = "label" if task == "classification" else "value"
            live = [o.get(key) for o in shadowed["_outputs"]]
            shadow = [o.get(key) for o in shadowed["_shadow"]]
            slices.append(compare_slice("shadow", task, shadowed["_target"], live, shadow, cfg))
    decision = decide(slices, cfg)
    logger.info("champion/challenger: %s (%s)", "promote" if decision.promote else "keep", "; ".join(decision.reasons))
    return decision


def feedback_cutoff(challenger_path: str | Path) -> float | None:
    """When the challenger's training feedback ends (its run's ``feedback_until`` flag), if it was retrained."""
    try:
        run_dir = run_folder_of(challenger_path)
        run_id = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["run_id"]
        flags = RunStore.for_root(run_dir.parent).get(run_id).flags
    except (ShipyardError, OSError, KeyError, ValueError):
        return None
    value = flags.get("feedback_until")
    return float(value) if value is not None else None


def compare_paths(
    store: Any, model: str, champion_path: str | Path, challenger_path: str | Path, cfg: PromotionConfig
) -> Decision:
    """Load both models; holdout = the champion run's test split; feedback = what arrived after the challenger's
    training cut-off (all of it when the challenger learnt from none)."""
    from shipyard.artifact import Artifact  # heavy (torch): only when two models are compared

    champion, challenger = Artifact.load(champion_path), Artifact.load(challenger_path)
    if champion.task != challenger.task or (champion.labels or []) != (challenger.labels or []):
        raise ShipyardError(
            "the challenger predicts something else than the champion (task or labels differ)",
            where=str(challenger_path),
        )
    holdout = None
    try:
        test = run_folder_of(champion_path) / "splits" / "test.parquet"
        holdout = pd.read_parquet(test) if test.is_file() else None
    except ShipyardError:
        logger.warning("the champion %s keeps no test split: comparing on feedback only", champion_path)
    cutoff = feedback_cutoff(challenger_path)
    rows = labelled_rows(store, model, since=cutoff + 1e-6 if cutoff is not None else None)
    return compare_models(champion, challenger, holdout=holdout, feedback_rows=rows, cfg=cfg)
