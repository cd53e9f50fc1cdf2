"""Drift statistics: PSI, Kolmogorov-Smirnov and chi-square per tabular feature, MMD on text embeddings.

The tests come from scipy (``ks_2samp``, ``chi2_contingency``); PSI and the kernel two-sample test (MMD with an
RBF kernel, bandwidth by the median heuristic, p-value by permutation) are short enough to write here, on numpy.
:func:`compare_frames` applies them to a reference frame (the training rows) and a current one (logged inputs)
and says, per feature, whether it drifted by the rule in :class:`shipyard.config.loop.DriftThresholds`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from shipyard.config.loop import DriftThresholds
from shipyard.pretrained import default_model_dir, load_tokenizer

logger = logging.getLogger(__name__)

EPS = 1e-4  # empty bins get this share, so PSI stays finite


@dataclass
class FeatureDrift:
    name: str
    kind: str  # numeric | categorical | text | prediction
    test: str  # ks | chi2 | mmd
    statistic: float
    p_value: float
    psi: float | None
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _psi_from_shares(ref: np.ndarray, cur: np.ndarray) -> float:
    ref = np.clip(ref, EPS, None)
    cur = np.clip(cur, EPS, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the reference's deciles (ties merged)."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi_from_shares(ref_counts / max(len(reference), 1), cur_counts / max(len(current), 1))


def _category_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    ref = reference.astype(str).value_counts()
    cur = current.astype(str).value_counts()
    levels = sorted(set(ref.index) | set(cur.index))
    return ref.reindex(levels, fill_value=0).to_numpy(float), cur.reindex(levels, fill_value=0).to_numpy(float)


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    ref, cur = _category_counts(reference, current)
    return _psi_from_shares(ref / max(ref.sum(), 1), cur / max(cur.sum(), 1))


def chi2_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Chi-square test of homogeneity of the two samples' category counts."""
    ref, cur = _category_counts(reference, current)
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    if table.shape[1] < 2:
        return 0.0, 1.0
    chi2, p, _, _ = stats.chi2_contingency(table)
    return float(chi2), float(p)


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    result = stats.ks_2samp(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
    return float(result.statistic), float(result.pvalue)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD² with an RBF kernel (median-distance bandwidth) and its permutation p-value."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.vstack([x, y])
    d = _sq_dists(z, z)
    off = d[~np.eye(len(z), dtype=bool)]
    bandwidth = float(np.median(off)) or 1.0
    k = np.exp(-d / bandwidth)
    n = len(x)

    def mmd2(idx: np.ndarray) -> float:
        a, b = idx[:n], idx[n:]
        kxx = k[np.ix_(a, a)]
        kyy = k[np.ix_(b, b)]
        kxy = k[np.ix_(a, b)]
        m, p = len(a), len(b)
        return float(
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (p * (p - 1)) - 2 * kxy.mean()
        )

    observed = mmd2(np.arange(len(z)))
    rng = np.random.default_rng(seed)
    exceed = sum(mmd2(rng.permutation(len(z))) >= observed for _ in range(permutations))
    return observed, (exceed + 1) / (permutations + 1)


def compare_feature(
    name: str, kind: str, reference: pd.Series, current: pd.Series, *, alpha: float, psi_floor: float
) -> FeatureDrift:
    """One tabular feature: KS + PSI (numeric) or chi-square + PSI (categorical)."""
    reference, current = reference.dropna(), current.dropna()
    if kind == "numeric":
        ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(float)
        cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(float)
        statistic, p = ks_test(ref, cur)
        psi = psi_numeric(ref, cur)
        test = "ks"
    else:
        statistic, p = chi2_test(reference, current)
        psi = psi_categorical(reference, current)
        test = "chi2"
    return FeatureDrift(name, kind, test, statistic, p, psi, bool(p < alpha and psi >= psi_floor))


def compare_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[dict[str, str]],
    thresholds: DriftThresholds,
    *,
    embed: Any = None,
    seed: int = 0,
) -> list[FeatureDrift]:
    """Every feature of the model, Bonferroni-corrected over their number; ``embed(texts) -> array`` for text."""
    checked = [f for f in features if f["name"] in current.columns and f["name"] in reference.columns]
    alpha = thresholds.alpha / max(len(checked), 1)
    results = []
    for feature in checked:
        name, kind = feature["name"], feature.get("type", "numeric")
        if kind == "text":
            results.append(_text_drift(name, reference[name], current[name], thresholds, alpha, embed, seed))
        elif kind in ("numeric", "categorical"):
            results.append(
                compare_feature(name, kind, reference[name], current[name], alpha=alpha, psi_floor=thresholds.psi)
            )
    return results


def _text_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    thresholds: DriftThresholds,
    alpha: float,
    embed: Any,
    seed: int,
) -> FeatureDrift:
    if embed is None:
        embed = embed_texts
    n = thresholds.text_sample
    ref = reference.dropna().astype(str).sample(n=min(n, reference.notna().sum()), random_state=seed).tolist()
    cur = current.dropna().astype(str).sample(n=min(n, current.notna().sum()), random_state=seed).tolist()
    vectors = np.asarray(embed(ref + cur))
    statistic, p = mmd_test(
        vectors[: len(ref)], vectors[len(ref) :], permutations=thresholds.mmd_permutations, seed=seed
    )
    return FeatureDrift(name, "text", "mmd", statistic, p, None, bool(p < alpha and statistic >= thresholds.mmd))


def prediction_drift(reference: pd.Series, current: pd.Series, task: str, thresholds: DriftThresholds) -> FeatureDrift:
    """The model's own outputs: predicted-label shares (classification) or predicted values (regression)."""
    kind = "categorical" if task == "classification" else "numeric"
    result = compare_feature(
        "prediction", kind, reference, current, alpha=thresholds.alpha, psi_floor=thresholds.prediction_psi
    )
    result.kind = "prediction"
    return result


_EMBEDDERS: dict[str, Any] = {}
_CACHE: dict[str, np.ndarray] = {}
CACHE_LIMIT = 50_000  # texts; repeated checks over sliding windows embed each text once


def embed_texts(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Sentence embeddings (mean-pooled, L2-normalised) from the bundled all-MiniLM-L6-v2, offline; cached."""
    todo = list(dict.fromkeys(t for t in texts if t not in _CACHE))
    if todo:
        for text, vector in zip(todo, _embed(todo, batch_size), strict=True):
            if len(_CACHE) >= CACHE_LIMIT:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[text] = vector
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([_CACHE[t] if t in _CACHE else _embed([t], 1)[0] for t in texts])


def _embed(texts: list[str], batch_size: int) -> np.ndarray:
    import torch  # heavy: imported only when text drift is checked

    if "minilm" not in _EMBEDDERS:
        from transformers import AutoModel  # heavy optional import: only text models need it

        folder = default_model_dir()
        _EMBEDDERS["minilm"] = (
            load_tokenizer(folder),
            AutoModel.from_pretrained(str(folder), local_files_only=True).eval(),
        )
    tokenizer, model = _EMBEDDERS["minilm"]
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[start : start + batch_size], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 384), dtype=np.float32)
