"""The preprocessor: turns cleaned rows into model inputs, with every statistic fitted on the training split only.

- numeric: impute (mean / median / most_frequent / constant), clip outliers, scale (standard / minmax / none);
- categorical: one-hot or ordinal, rare levels folded into one "other" level past ``max_categories``, unseen levels
  ignored (all-zero one-hot / reserved ordinal 0) or an error naming the column and value;
- images: float32 (N, C, H, W) in [0, 1], then normalised by the training mean/std per channel;
- text: handed to a pluggable :class:`TextEncoder` (a later transformer family supplies one);
- target: class indices (labels are the sorted class names as strings) or float32 values.

State is saved as ``preprocessor.json`` (structure) + ``preprocessor.safetensors`` (numbers), never pickle, so an
artifact can be loaded without executing anything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.schema import CleaningConfig
from shipyard.data.cleaning import clip_bounds, normalise_text, numeric_fill
from shipyard.data.derive import derive_columns
from shipyard.data.images import stack_images
from shipyard.data.preprocessor_files import FORMAT_VERSION, JSON_NAME, TENSORS_NAME, read_state, write_state
from shipyard.data.splits import label_key
from shipyard.data.text_encoders import TextEncoder, encoder_class, encoder_id, register_text_encoder
from shipyard.data.types import _as_numeric, _to_text, present, require_columns
from shipyard.errors import ShipyardError
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)

__all__ = ["JSON_NAME", "MISSING", "OTHER", "TENSORS_NAME", "Preprocessor", "TextEncoder", "register_text_encoder"]

OTHER = "__other__"
MISSING = "__missing__"


def _sort_labels(values: set[str]) -> list[str]:
    # Class names are strings; integer-like names sort by value so "10" comes after "9".
    try:
        return sorted(values, key=lambda v: (0, int(v), ""))
    except ValueError:
        return sorted(values)


class Preprocessor:
    """Fit on train with :meth:`fit`, then :meth:`transform` any split or a serving request."""

    def __init__(
        self,
        *,
        features: list[str],
        column_types: dict[str, str],
        target: str,
        task: str,
        cleaning: CleaningConfig | None = None,
        text_encoder: TextEncoder | None = None,
        derive: dict[str, str] | None = None,
    ) -> None:
        self.features = list(features)
        self.derive = dict(derive or {})  # derived numeric features (data/derive.py), computed from raw columns
        self.column_types = {name: column_types[name] for name in self.features}
        self.target = target
        self.task = task
        self.cleaning = cleaning or CleaningConfig()
        self.text_encoder = text_encoder
        self.labels: list[str] | None = None
        self.numeric: list[str] = [n for n in self.features if self.column_types[n] == "numeric"]
        self.categorical: list[str] = [n for n in self.features if self.column_types[n] == "categorical"]
        self.text: list[str] = [n for n in self.features if self.column_types[n] == "text"]
        self.images: list[str] = [n for n in self.features if self.column_types[n] == "image"]
        self.categories: dict[str, dict[str, Any]] = {}
        self.stats: dict[str, np.ndarray] = {}
        self.image_shape: tuple[int, int, int] | None = None  # (C, H, W)
        self.fitted = False
        self._check_layout()

    # ----------------------------------------------------------------------------------------- layout

    @property
    def kind(self) -> str:
        if self.images:
            return "image"
        if self.text:
            return "text"
        return "tabular"

    def _check_layout(self) -> None:
        others = [n for n in self.features if n not in self.images]
        if self.images and (len(self.images) > 1 or others):
            raise ShipyardError(
                f"an image model takes exactly one image column, got images {self.images} and other columns {others}",
                where="data.features",
                hint="list only the image column in `features` (or drop the others)",
            )
        unknown = [n for n, t in self.column_types.items() if t == "label"]
        if unknown:
            raise ShipyardError(
                f"column {unknown[0]!r} is typed `label`, which only the target can be", where="data.features"
            )
        if self.text:
            if self.text_encoder is None:
                raise ShipyardError(
                    f"column {self.text[0]!r} is text, and no text encoder is available for this model",
                    where=f"data.features ({self.text[0]})",
                    hint="drop the column (data.drop_columns), declare it categorical, or use a text model",
                )
            if len(self.text) > 1 or len(self.features) > 1:
                raise ShipyardError(
                    f"a text model takes exactly one text column, got {self.features}",
                    where="data.features",
                )

    @property
    def feature_names(self) -> list[str]:
        if self.kind == "image":
            return list(self.images)
        if self.kind == "text":
            return list(self.text)
        names: list[str] = []
        for name in self.features:
            if self.column_types[name] == "numeric" or self.cleaning.categorical_encoding == "ordinal":
                names.append(name)
            else:
                names.extend(f"{name}={level}" for level in self.categories[name]["levels"])
        return names

    @property
    def n_features(self) -> int:
        return len(self.feature_names) if self.kind == "tabular" else 0

    def input_spec(self, task: str | None = None) -> InputSpec:
        task = task or self.task
        n_outputs = len(self.labels or []) if task == "classification" else 1
        return InputSpec(
            kind=self.kind,
            n_features=self.n_features,
            image_shape=self.image_shape,
            n_outputs=n_outputs,
            task=task,
        )

    # -------------------------------------------------------------------------------------------- fit

    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        """Learn every statistic from ``frame`` (the training split)."""
        frame = derive_columns(frame, self.derive)
        require_columns(frame, self.features, field="data.features")
        where = frame.attrs.get("source", "train")
        if self.target in frame.columns:
            self._fit_target(frame[self.target])
        self._fit_numeric(frame, where)
        for name in self.categorical:
            self._fit_categorical(name, frame[name])
        if self.images:
            self._fit_image(frame[self.images[0]], where)
        if self.text and self.text_encoder is not None:
            col = self.text[0]
            self.text_encoder.fit(self._texts(frame[col]), rows=list(frame.index), where=f"column '{col}'")
        self.fitted = True
        log.info("preprocessor fitted: %s inputs, %d features", self.kind, self.n_features)
        return self

    def _fit_target(self, series: pd.Series) -> None:
        if self.task == "classification":
            self.labels = _sort_labels({label_key(v) for v in series.dropna()})
            if len(self.labels) < 2:
                raise ShipyardError(
                    f"classification needs at least two classes; the training split only has {self.labels}",
                    where=f"data.target ({self.target})",
                )
        else:
            _as_numeric(series, self.target, "train")

    def _fit_numeric(self, frame: pd.DataFrame, where: str) -> None:
        if not self.numeric:
            return
        cfg = self.cleaning
        values = np.column_stack([_as_numeric(frame[n], n, where).to_numpy() for n in self.numeric])
        k = len(self.numeric)
        fill = np.full(k, np.nan)
        for j in range(k):
            col = values[:, j]
            present = col[~np.isnan(col)]
            if cfg.missing == "mean":
                fill[j] = present.mean() if present.size else 0.0
            elif cfg.missing == "median":
                fill[j] = np.median(present) if present.size else 0.0
            elif cfg.missing == "most_frequent":
                if present.size:
                    uniq, counts = np.unique(present, return_counts=True)
                    fill[j] = uniq[np.argmax(counts)]  # ties -> the smallest value, deterministic
                else:
                    fill[j] = 0.0
            elif cfg.missing == "constant":
                fill[j] = numeric_fill(cfg.fill_value)
            # drop / error: cleaning removed missing rows; fill stays NaN so a missing value later is an error,
            # except in a derived column, where x / 0 has no raw gap to drop: its median, as a missing value
            if np.isnan(fill[j]) and self.numeric[j] in self.derive and present.size:
                fill[j] = np.median(present)
        values = np.where(np.isnan(values), fill, values)
        lo = np.full(k, -np.inf)
        hi = np.full(k, np.inf)
        if cfg.clip_outliers is not None:
            for j in range(k):
                lo[j], hi[j] = clip_bounds(values[:, j], cfg.clip_outliers)
            values = np.clip(values, lo, hi)
        center = np.zeros(k)
        scale = np.ones(k)
        with np.errstate(invalid="ignore"):
            if cfg.scaling == "standard":
                center = np.nanmean(values, axis=0)
                scale = np.nanstd(values, axis=0)
            elif cfg.scaling == "minmax":
                center = np.nanmin(values, axis=0)
                scale = np.nanmax(values, axis=0) - center
        center = np.nan_to_num(center, nan=0.0)
        # a constant column would divide by zero; leave it centred at 0 instead
        scale = np.where(~np.isfinite(scale) | (scale == 0), 1.0, scale)
        self.stats.update(
            {
                "numeric.fill": fill,
                "numeric.clip_low": lo,
                "numeric.clip_high": hi,
                "numeric.center": center,
                "numeric.scale": scale,
            }
        )

    def _categorical_fill(self, series: pd.Series) -> str | None:
        rule = self.cleaning.categorical_missing
        if rule == "constant":
            fill = self.cleaning.fill_value
            return str(fill) if isinstance(fill, str) else MISSING
        if rule == "most_frequent":
            present = series.dropna().map(_to_text)
            if present.empty:
                return MISSING
            counts = present.value_counts()
            return str(sorted(counts[counts == counts.max()].index)[0])
        return None  # drop / error: missing values were handled by cleaning

    def _fit_categorical(self, name: str, series: pd.Series) -> None:
        fill = self._categorical_fill(series)
        values = series.map(_to_text, na_action="ignore")
        if fill is not None:
            values = values.fillna(fill)
        counts = values.dropna().value_counts()
        # most frequent first, ties by name, so the kept set is deterministic
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        limit = self.cleaning.max_categories
        other = len(ordered) > limit
        kept = [str(level) for level, _ in (ordered[: limit - 1] if other else ordered)]
        levels = sorted(kept)
        if other:
            levels.append(OTHER)
            log.info(
                "column %r: %d levels, %d rare ones folded into %r", name, len(ordered), len(ordered) - len(kept), OTHER
            )
        self.categories[name] = {"levels": levels, "other": other, "fill": fill, "seen": sorted(map(str, counts.index))}

    def _fit_image(self, series: pd.Series, where: str) -> None:
        stacked = stack_images(series, where, self.image_shape)
        self.image_shape = tuple(int(d) for d in stacked.shape[1:])  # type: ignore[assignment]
        scaled = stacked.astype(np.float64) / 255.0
        mean = scaled.mean(axis=(0, 2, 3))
        std = scaled.std(axis=(0, 2, 3))
        self.stats["image.mean"] = mean
        self.stats["image.std"] = np.where(std > 0, std, 1.0)

    def _texts(self, series: pd.Series) -> list[str]:
        # a number in a text column (a JSON request's 12345, a digits-only CSV cell) is the text of that number
        return [
            normalise_text(v if isinstance(v, str) else _to_text(v), self.cleaning.text) if present(v) else ""
            for v in series
        ]

    # ------------------------------------------------------------------------------------- transform

    def _need_fitted(self) -> None:
        if not self.fitted:
            raise ShipyardError("the preprocessor is used before `fit`")

    def transform(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Model inputs for ``frame``: ``{"x": float32}`` (tabular (N, F), images (N, C, H, W))."""
        self._need_fitted()
        frame = derive_columns(frame, self.derive)  # a request carries the raw columns only
        require_columns(frame, self.features, field="data.features", where=frame.attrs.get("source"))
        where = frame.attrs.get("source", "input")
        if self.kind == "image":
            return {"x": self._transform_images(frame[self.images[0]], where)}
        if self.kind == "text":
            assert self.text_encoder is not None
            col = self.text[0]
            return self.text_encoder.transform(self._texts(frame[col]), rows=list(frame.index), where=f"column '{col}'")
        blocks: list[np.ndarray] = []
        numeric = self._transform_numeric(frame, where) if self.numeric else None
        for name in self.features:
            if self.column_types[name] == "numeric":
                assert numeric is not None
                blocks.append(numeric[:, [self.numeric.index(name)]])
            else:
                blocks.append(self._transform_categorical(name, frame[name], where))
        x = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
        return {"x": x.astype(np.float32)}

    def _transform_numeric(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        values = np.column_stack([_as_numeric(frame[n], n, where).to_numpy() for n in self.numeric])
        fill = self.stats["numeric.fill"]
        missing = np.isnan(values)
        if missing.any():
            bad = missing & np.isnan(fill)[None, :]
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise ShipyardError(
                    f"missing value in numeric column {self.numeric[j]!r}, and cleaning.missing is "
                    f"{self.cleaning.missing!r} (no imputation)",
                    where=f"{where}, row {frame.index[i]}, column {self.numeric[j]!r}",
                )
            values = np.where(missing, fill[None, :], values)
        values = np.clip(values, self.stats["numeric.clip_low"], self.stats["numeric.clip_high"])
        return (values - self.stats["numeric.center"]) / self.stats["numeric.scale"]

    def _transform_categorical(self, name: str, series: pd.Series, where: str) -> np.ndarray:
        info = self.categories[name]
        levels: list[str] = info["levels"]
        values = series.map(_to_text, na_action="ignore")
        if info["fill"] is not None:
            values = values.fillna(info["fill"])
        elif values.isna().any():
            row = values.isna().idxmax()
            raise ShipyardError(
                f"missing value in categorical column {name!r}, and cleaning.categorical_missing is "
                f"{self.cleaning.categorical_missing!r}",
                where=f"{where}, row {row}, column {name!r}",
            )
        index = {level: i for i, level in enumerate(levels)}
        seen = set(info["seen"])
        other_index = index.get(OTHER, -1)
        codes = values.map(lambda v: index.get(v, other_index if v in seen else -1)).to_numpy(dtype=np.int64)
        unknown = codes < 0
        if unknown.any() and self.cleaning.unknown_category == "error":
            i = int(np.argmax(unknown))
            raise ShipyardError(
                f"value {values.iloc[i]!r} of column {name!r} never occurs in the training data",
                where=f"{where}, row {series.index[i]}, column {name!r}",
                hint="set cleaning.unknown_category to 'ignore' to encode unseen values as all-zero",
            )
        if self.cleaning.categorical_encoding == "ordinal":
            # 0 is reserved for unseen values; known levels are 1..K
            return (codes + 1).astype(np.float64)[:, None]
        out = np.zeros((len(codes), len(levels)))
        rows = np.flatnonzero(~unknown)
        out[rows, codes[~unknown]] = 1.0
        return out

    def _transform_images(self, series: pd.Series, where: str) -> np.ndarray:
        stacked = stack_images(series, where, self.image_shape)
        x = stacked.astype(np.float32) / np.float32(255.0)
        mean = self.stats["image.mean"].astype(np.float32)[None, :, None, None]
        std = self.stats["image.std"].astype(np.float32)[None, :, None, None]
        return (x - mean) / std

    # ---------------------------------------------------------------------------------------- target

    def encode_target(self, series: pd.Series) -> np.ndarray:
        """int64 class indices (classification) or float32 values (regression)."""
        self._need_fitted()
        where = series.attrs.get("source", "target") if hasattr(series, "attrs") else "target"
        if self.task == "classification":
            assert self.labels is not None
            index = {label: i for i, label in enumerate(self.labels)}
            keys = series.map(label_key)
            codes = keys.map(lambda k: index.get(k, -1)).to_numpy(dtype=np.int64)
            if (codes < 0).any():
                i = int(np.argmax(codes < 0))
                raise ShipyardError(
                    f"label {keys.iloc[i]!r} is not one of the training classes {self.labels}",
                    where=f"{where}, row {series.index[i]}, column {self.target!r}",
                )
            return codes
        return _as_numeric(series, self.target, where).to_numpy().astype(np.float32)

    def decode_target(self, indices: Any) -> list:
        """Class names for class indices (classification) or plain floats (regression)."""
        values = np.asarray(indices)
        if self.task == "classification":
            assert self.labels is not None
            return [self.labels[int(i)] for i in values.reshape(-1)]
        return [float(v) for v in values.reshape(-1)]

    # ----------------------------------------------------------------------------------- save / load

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "target": self.target,
            "features": [{"name": n, "type": self.column_types[n]} for n in self.features],
            "cleaning": self.cleaning.model_dump(mode="json"),
            "labels": self.labels,
            "numeric": self.numeric,
            "categories": self.categories,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "text_encoder": encoder_id(self.text_encoder) if self.text_encoder is not None else None,
            "feature_names": self.feature_names,
            "input_kind": self.kind,
            "derive": self.derive,
        }

    def save(self, folder: Path) -> Path:
        """Write ``preprocessor.json`` + ``preprocessor.safetensors`` (atomically) into ``folder``."""
        self._need_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.text_encoder is not None:
            self.text_encoder.save(folder / "text_encoder")
        write_state(folder, self.to_dict(), self.stats)
        return folder

    @classmethod
    def load(cls, folder: Path) -> Preprocessor:
        folder = Path(folder)
        state, stats = read_state(folder)
        encoder: TextEncoder | None = None
        if state.get("text_encoder"):
            encoder = encoder_class(state["text_encoder"], str(folder / JSON_NAME)).load(folder / "text_encoder")
        features = [f["name"] for f in state["features"]]
        types = {f["name"]: f["type"] for f in state["features"]}
        pre = cls(
            features=features,
            column_types=types,
            target=state["target"],
            task=state["task"],
            cleaning=CleaningConfig.model_validate(state["cleaning"]),
            text_encoder=encoder,
            derive=state.get("derive") or {},
        )
        pre.labels = state["labels"]
        pre.categories = state["categories"]
        pre.image_shape = tuple(state["image_shape"]) if state["image_shape"] else None  # type: ignore[assignment]
        pre.stats = stats
        pre.fitted = True
        return pre
