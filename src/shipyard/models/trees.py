"""Gradient-boosted trees (LightGBM) as a model family.

A :class:`TreeModel` holds a LightGBM booster behind the ``forward(x) -> logits | values`` call that every predict
path uses (``Engine.predict``, the artifact, permutation importance, fairness, distillation's teacher), so a tree
model goes wherever a torch model goes at inference time. It has no torch parameters and no gradients: it is
trained by LightGBM itself (``shipyard.training.trees``), and explanations use its exact TreeSHAP values
(:meth:`TreeModel.contributions`) instead of integrated gradients.

Inputs are the preprocessor's ``x`` (N, F) with categorical columns encoded as ordinal codes (1..K, 0 for a level
never seen in training), which LightGBM splits on natively. Outputs follow the torch families: classification
logits (N, K), regression values (N, 1) in
real units (trees need no target scaling). Classification logits are normalised to log-probabilities (a softmax
gives LightGBM's probabilities; the ONNX export computes the same), so exports are checked value for value.

Saved as LightGBM's own text format (``model.txt``), which loading parses and never executes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shipyard.config.models import LightGBMParams
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_text
from shipyard.models.registry import register
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
# preprocessing a tree family asks of the data layer: categories as codes (LightGBM splits on them natively),
# no scaling (a split threshold in the column's own units reads better, and trees do not care about scale)
TREE_CLEANING = {"categorical_encoding": "ordinal", "scaling": "none"}


def _lightgbm() -> Any:
    # lightgbm is a dependency of the package, imported here because it takes seconds to import and only tree
    # jobs need it
    import lightgbm

    return lightgbm


class TreeModel(nn.Module):
    """A LightGBM booster with the module interface of the other families (no trainable torch parameters)."""

    native_backend = "lightgbm"  # the artifact saves it with save() / load() instead of safetensors

    def __init__(self, params: LightGBMParams, spec: InputSpec, categorical: list[int] | None = None) -> None:
        super().__init__()
        self.params = params
        self.spec = spec
        self.categorical = list(categorical or [])  # indices of categorical columns in x
        self.booster: Any = None
        self.best_iteration = 0

    # ------------------------------------------------------------------------------------------ LightGBM set-up

    @property
    def n_classes(self) -> int:
        return self.spec.n_outputs if self.spec.task == "classification" else 1

    def objective(self) -> dict[str, Any]:
        if self.spec.task == "regression":
            return {"objective": "regression", "metric": "l2"}
        if self.n_classes == 2:
            return {"objective": "binary", "metric": "binary_logloss"}
        return {"objective": "multiclass", "metric": "multi_logloss", "num_class": self.n_classes}

    def lgb_params(self, *, seed: int, num_threads: int | None) -> dict[str, Any]:
        """LightGBM's parameter dict for this model (deterministic for a given seed and thread count)."""
        p = self.params
        out = {
            **self.objective(),
            "learning_rate": p.learning_rate,
            "num_leaves": p.num_leaves,
            "max_depth": p.max_depth,
            "min_child_samples": p.min_child_samples,
            "feature_fraction": p.feature_fraction,
            "bagging_fraction": p.bagging_fraction,
            "bagging_freq": p.bagging_freq,
            "lambda_l1": p.lambda_l1,
            "lambda_l2": p.lambda_l2,
            "min_split_gain": p.min_split_gain,
            "max_bin": p.max_bin,
            "cat_smooth": p.cat_smooth,
            "max_cat_to_onehot": p.max_cat_to_onehot,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,  # with `deterministic`, the same seed gives the same trees
            "verbosity": -1,
        }
        if num_threads:
            out["num_threads"] = num_threads
        return out

    def adapt(self, preprocessor: Any) -> None:
        """Learn which columns of ``x`` are categorical from the fitted preprocessor."""
        self.categorical = categorical_indices(preprocessor.feature_names, preprocessor.column_types)

    @property
    def native_categorical(self) -> list[int]:
        return self.categorical if self.params.categorical == "native" else []

    def set_booster(self, booster: Any, best_iteration: int) -> None:
        """Keep the booster cut at ``best_iteration`` (what is saved is exactly what predicts)."""
        lgb = _lightgbm()
        text = booster.model_to_string(num_iteration=best_iteration or None)
        self.booster = lgb.Booster(model_str=text)
        self.best_iteration = int(best_iteration or booster.current_iteration())

    # ---------------------------------------------------------------------------------------------- inference

    def _need_booster(self) -> Any:
        if self.booster is None:
            raise ShipyardError("the tree model is used before it was trained", where="model")
        return self.booster

    def raw_scores(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, K) for classification, values (N, 1) for regression, as float32."""
        booster = self._need_booster()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != booster.num_feature():
            raise ShipyardError(
                f"the tree model takes {booster.num_feature()} features per row, got shape {tuple(x.shape)}",
                where="model input x",
            )
        if len(x) == 0:
            return np.zeros((0, self.spec.n_outputs), dtype=np.float32)
        raw = np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)
        if self.spec.task == "regression":
            return raw.reshape(-1, 1).astype(np.float32)
        logits = np.column_stack([np.zeros_like(raw), raw]) if self.n_classes == 2 else raw.reshape(len(x), -1)
        # log-probabilities: the same logits up to a shift per row, and what the ONNX export computes too
        shifted = logits - logits.max(axis=1, keepdims=True)
        return (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).astype(np.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.raw_scores(x.detach().float().cpu().numpy())
        return torch.from_numpy(out).to(x.device)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP values (Lundberg et al. 2020, LightGBM's ``pred_contrib``), shape (N, outputs, F + 1):
        per output, one value per feature and the expected value last; each row sums to the raw score.
        Binary classification has two outputs, the first all zero (its logit is the constant 0)."""
        booster = self._need_booster()
        x = np.asarray(x, dtype=np.float64)
        n, f = len(x), booster.num_feature()
        contrib = np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
        if self.spec.task == "regression":
            return contrib.reshape(n, 1, f + 1)
        if self.n_classes == 2:
            return np.stack([np.zeros_like(contrib), contrib], axis=1)
        return contrib.reshape(n, self.n_classes, f + 1)

    def importance(self) -> dict[str, np.ndarray]:
        """Per-feature total gain and number of splits."""
        booster = self._need_booster()
        return {
            "gain": np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64),
            "split": np.asarray(booster.feature_importance(importance_type="split"), dtype=np.float64),
        }

    @property
    def n_trees(self) -> int:
        return int(self._need_booster().num_trees())

    # ------------------------------------------------------------------------------------------- save / load

    def save(self, folder: Path) -> dict[str, Any]:
        """Write ``model.txt`` atomically; returns what the artifact's shipyard.json records about it."""
        booster = self._need_booster()
        atomic_write_text(Path(folder) / MODEL_FILE, booster.model_to_string())
        return {
            "model_file": MODEL_FILE,
            "categorical_features": self.categorical,
            "best_iteration": self.best_iteration,
            "trees": self.n_trees,
        }

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any], spec: InputSpec, meta: dict[str, Any]) -> TreeModel:
        """The model saved in ``folder`` (LightGBM's text format is parsed, never executed)."""
        lgb = _lightgbm()
        path = Path(folder) / str(meta.get("model_file", MODEL_FILE))
        if not path.is_file():
            raise ShipyardError("the tree model file is missing", where=str(path))
        model = cls(LightGBMParams.model_validate(params), spec, meta.get("categorical_features", []))
        try:
            booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
        except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
            raise ShipyardError(f"not a readable LightGBM model: {exc}", where=str(path)) from None
        if booster.num_feature() != spec.n_features:
            raise ShipyardError(
                f"the tree model takes {booster.num_feature()} features, the artifact says {spec.n_features}",
                where=str(path),
            )
        model.booster = booster
        model.best_iteration = int(meta.get("best_iteration", booster.current_iteration()))
        return model.eval()


def categorical_indices(feature_names: list[str], column_types: dict[str, str]) -> list[int]:
    """Positions of the categorical columns in ``x`` (ordinal encoding keeps one column per feature)."""
    return [i for i, name in enumerate(feature_names) if column_types.get(name) == "categorical"]


def class_weights(params: LightGBMParams, target: np.ndarray, labels: list[str] | None) -> np.ndarray | None:
    """Per-row training weights from ``class_weight`` (None: every row counts once)."""
    cw = params.class_weight
    if cw is None or labels is None:
        return None
    k = len(labels)
    if cw == "balanced":
        counts = np.bincount(target, minlength=k).astype(np.float64)
        per_class = np.where(counts > 0, len(target) / (k * np.maximum(counts, 1)), 0.0)
    else:
        unknown = sorted(set(cw) - set(labels))
        if unknown:
            raise ShipyardError(
                f"class_weight names {unknown}, which are not classes of the training data {labels}",
                where="model.class_weight",
            )
        per_class = np.array([float(cw.get(label, 1.0)) for label in labels])
    return per_class[target]


@register("lightgbm", LightGBMParams, input_kinds=("tabular",), trainer="trees", cleaning=TREE_CLEANING)
def build(params: LightGBMParams, spec: InputSpec) -> nn.Module:
    """An untrained tree model; ``shipyard.training.trees`` trains it, which also sets the categorical columns."""
    return TreeModel(params, spec)
