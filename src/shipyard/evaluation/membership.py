"""Membership-inference audit: can an attacker tell training rows from held-out rows by the model's outputs?

``shipyard audit privacy RUN`` (:func:`audit_privacy`) loads the run's model and its stored splits
(``run_dir/splits/``, data/split_files.py), draws equal-size seeded samples of training rows ("members") and
held-out test rows ("non-members"; validation when there is no test split), and runs two attacks:

- ``loss_threshold`` (Yeom et al. 2018): score = -loss of the true label; members tend to have lower loss.
- ``calibrated_lira_offline`` (classification only): a shadow-free, likelihood-ratio-style attack. The score is
  the logit-scaled confidence in the true class, ``log p - log(1 - p)``, which is close to Gaussian; it is
  standardised with the mean and standard deviation of that score among *reference non-members of the same
  class* (the validation split, disjoint from both samples; the non-member sample itself when there is no
  validation split), i.e. a one-sided offline LiRA test with per-class difficulty calibration (Carlini et al.
  2022, "offline" variant with a global variance per class).

For each attack: ROC AUC (``sklearn.metrics.roc_auc_score``; 0.5 is chance) and the best membership advantage
``max(TPR - FPR)`` over all thresholds (0 is chance; an (ε, δ)-DP model bounds it by ``e^ε - 1 + 2δ``-ish, far
from tight). The result is written to ``run_dir/privacy_audit.json`` with the run's DP guarantee for context.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.artifact import Artifact
from shipyard.data.split_files import read_split, split_path, stored_splits
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json

log = logging.getLogger(__name__)

__all__ = ["attack_metrics", "audit_privacy", "calibrated_scores", "membership_audit", "per_example_loss"]

MAX_SAMPLES = 5000
_EPS = 1e-7


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def per_example_loss(outputs: np.ndarray, y: np.ndarray, task: str = "classification") -> np.ndarray:
    """Cross-entropy of the true class (classification logits) or squared error (regression values)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "classification":
        p = _softmax(outputs)[np.arange(len(y)), np.asarray(y).astype(int)]
        return -np.log(np.clip(p, _EPS, 1.0))
    return (outputs.reshape(len(outputs), -1)[:, 0] - np.asarray(y, dtype=np.float64)) ** 2


def _logit_confidence(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.clip(_softmax(np.asarray(outputs, np.float64))[np.arange(len(y)), np.asarray(y).astype(int)], _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def calibrated_scores(outputs: np.ndarray, y: np.ndarray, ref_outputs: np.ndarray, ref_y: np.ndarray) -> np.ndarray:
    """Per-class standardised logit confidence: (s - mean_out[c]) / std_out[c] from reference non-members."""
    s = _logit_confidence(outputs, y)
    ref = _logit_confidence(ref_outputs, ref_y)
    y = np.asarray(y).astype(int)
    ref_y = np.asarray(ref_y).astype(int)
    out = np.empty_like(s)
    g_mu, g_sd = float(ref.mean()), float(ref.std() + 1e-6)
    for c in np.unique(y):
        sel = ref[ref_y == c]
        mu, sd = (float(sel.mean()), float(sel.std() + 1e-6)) if len(sel) >= 5 else (g_mu, g_sd)
        out[y == c] = (s[y == c] - mu) / sd
    return out


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict[str, float]:
    """AUC and best advantage (max TPR - FPR) of 'higher score = member'."""
    from sklearn.metrics import roc_auc_score, roc_curve  # scikit-learn: only for an audit

    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    scores = np.r_[member_scores, nonmember_scores]
    auc = float(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores)
    adv = float(np.max(tpr - fpr))
    return {"auc": round(auc, 4), "advantage": round(max(adv, 0.0), 4)}


def membership_audit(
    member_outputs: np.ndarray,
    member_y: np.ndarray,
    nonmember_outputs: np.ndarray,
    nonmember_y: np.ndarray,
    *,
    task: str = "classification",
    reference_outputs: np.ndarray | None = None,
    reference_y: np.ndarray | None = None,
    max_samples: int = MAX_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Both attacks on equal-size seeded samples of members and non-members (model outputs already computed)."""
    rng = np.random.default_rng(seed)
    m = int(min(len(member_y), len(nonmember_y), max_samples))
    if m < 10:
        raise ShipyardError(f"too few rows for a membership audit ({m} per side; need 10)", where="splits")
    mi = rng.choice(len(member_y), m, replace=False)
    ni = rng.choice(len(nonmember_y), m, replace=False)
    mo, my = np.asarray(member_outputs)[mi], np.asarray(member_y)[mi]
    no, ny = np.asarray(nonmember_outputs)[ni], np.asarray(nonmember_y)[ni]
    result: dict[str, Any] = {"samples_per_side": m, "seed": seed, "attacks": {}}
    ml, nl = per_example_loss(mo, my, task), per_example_loss(no, ny, task)
    result["attacks"]["loss_threshold"] = {
        **attack_metrics(-ml, -nl),
        "mean_loss_members": round(float(ml.mean()), 6),
        "mean_loss_nonmembers": round(float(nl.mean()), 6),
    }
    if task == "classification":
        if reference_outputs is None or reference_y is None or len(reference_y) < 20:
            reference_outputs, reference_y, ref_name = no, ny, "non-member sample"
        else:
            ref_name = "reference split"
        result["attacks"]["calibrated_lira_offline"] = {
            **attack_metrics(
                calibrated_scores(mo, my, reference_outputs, reference_y),
                calibrated_scores(no, ny, reference_outputs, reference_y),
            ),
            "calibrated_on": ref_name,
        }
    result["max_auc"] = max(a["auc"] for a in result["attacks"].values())
    result["max_advantage"] = max(a["advantage"] for a in result["attacks"].values())
    return result


def _read_split(run_dir: Path, name: str) -> pd.DataFrame | None:
    path = split_path(run_dir, name)  # Parquet, or safetensors for an image run (data/split_files.py)
    return read_split(path) if path is not None else None


def audit_privacy(run_dir: str | Path, *, max_samples: int = MAX_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Run the membership-inference audit on a run folder and write ``run_dir/privacy_audit.json``."""
    run_dir = Path(run_dir)
    if not stored_splits(run_dir):
        raise ShipyardError(
            "no stored splits (run_dir/splits/*.parquet or *.safetensors) to audit",
            where=str(run_dir),
            hint="train the run again: runs keep their splits (image runs from before they did kept none)",
        )
    art = Artifact.load(run_dir)
    target = art.meta.get("target")
    frames = {k: _read_split(run_dir, k) for k in ("train", "validation", "test")}
    train = frames["train"]
    holdout_name = "test" if frames["test"] is not None and len(frames["test"]) else "validation"
    holdout = frames[holdout_name]
    if train is None or holdout is None or not len(holdout):
        raise ShipyardError("the run needs stored train and test (or validation) splits", where=str(run_dir / "splits"))

    def outputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return art.raw_outputs(art.preprocessor.transform(frame)), art.preprocessor.encode_target(frame[target])

    to, ty = outputs(train)
    ho, hy = outputs(holdout)
    ref = frames["validation"] if holdout_name == "test" else None
    ro, ry = outputs(ref) if ref is not None and len(ref) else (None, None)
    result = membership_audit(
        to, ty, ho, hy, task=art.task, reference_outputs=ro, reference_y=ry, max_samples=max_samples, seed=seed
    )
    result["nonmembers_from"] = holdout_name
    metrics_path = run_dir / "metrics.json"
    privacy = json.loads(metrics_path.read_text(encoding="utf-8")).get("privacy") if metrics_path.is_file() else None
    result["dp_guarantee"] = privacy or "none"
    atomic_write_json(run_dir / "privacy_audit.json", result)
    log.info(
        "membership audit of %s: max AUC %.3f, max advantage %.3f",
        run_dir.name,
        result["max_auc"],
        result["max_advantage"],
    )
    return result
