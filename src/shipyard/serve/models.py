"""What the server serves: model folders resolved, loaded once, warmed up, and their request schemas.

A path given to the server may be a run folder (its ``optimized/int8/`` or ``optimized/onnx/`` ONNX artifact
is preferred when present, else its ``model/``) or a model folder. :func:`read_spec` reads only
``shipyard.json`` (cheap, at app creation, so every model's routes and OpenAPI schema exist from the start);
:func:`load_version` loads the weights and runs a warm-up prediction (slow, in a thread).

Request schemas are generated per model from its feature list with :func:`pydantic.create_model`: numeric
features are finite floats, categorical and text features strings, image features nested lists of pixel values
(numbers 0-255) of the model's shape (``[H][W]`` for one channel, ``[H][W][C]`` for more), so a ragged, null,
NaN or out-of-range image gets a 422 that names the row and column, never a 500;
unknown fields are refused (``extra="forbid"``) and types are not coerced (``strict``), so a wrong field gets a
422 that names it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from shipyard.artifact import META, Artifact, refuse_pickles
from shipyard.errors import ShipyardError
from shipyard.models.searcher import Searcher

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PREFERRED_OPTIMIZED = ("optimized/int8", "optimized/onnx")


class ModelNotFound(ShipyardError):
    """No run or model folder at a path (missing, or not one): callers may answer alike for both."""


# ---------------------------------------------------------------------------------------------- resolving
def resolve_model_dir(path: str | Path) -> Path:
    """The artifact folder to serve for ``path`` (a run folder or a model folder)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelNotFound("model path does not exist", where=str(path))
    for sub in PREFERRED_OPTIMIZED:
        candidate = path / sub
        meta = candidate / META
        if meta.is_file():
            try:
                backend = json.loads(meta.read_text(encoding="utf-8")).get("backend")
            except (OSError, json.JSONDecodeError):
                log.warning("%s: unreadable %s; ignoring this optimized artifact", candidate, META)
                continue
            if backend == "onnx":
                return candidate
    if (path / "model" / META).is_file():
        return path / "model"
    if (path / META).is_file():
        return path
    raise ModelNotFound(f"not a run or model folder: no {META} in it, in model/ or in optimized/*/", where=str(path))


@dataclass(frozen=True)
class ModelSpec:
    """What ``shipyard.json`` says about a served model (read without loading any weights)."""

    path: Path
    meta: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def features(self) -> list[dict[str, str]]:
        return list(self.meta.get("features") or [])

    @property
    def labels(self) -> list[str] | None:
        return self.meta.get("labels")

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(channels, height, width) of an image model's input, when ``shipyard.json`` says."""
        shape = (self.meta.get("input") or {}).get("image_shape")
        if isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape):
            return (shape[0], shape[1], shape[2])
        return None

    @property
    def backend(self) -> str:
        return str(self.meta.get("backend", "torch"))


def read_spec(path: str | Path) -> ModelSpec:
    """Resolve ``path``, refuse pickles, and read its ``shipyard.json``."""
    folder = resolve_model_dir(path)
    refuse_pickles(folder)
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ShipyardError(f"{META} is not valid JSON ({exc.msg}, line {exc.lineno})", where=str(folder)) from None
    for key in ("task", "features"):
        if key not in meta:
            raise ShipyardError(f"{META} has no {key!r}", where=str(folder))
    if meta["task"] not in ("classification", "regression", "retrieval"):
        raise ShipyardError(f"unsupported task {meta['task']!r}", where=f"{folder / META} task")
    for i, feat in enumerate(meta["features"]):
        if not isinstance(feat, dict) or "name" not in feat or feat.get("type") not in FEATURE_TYPES:
            raise ShipyardError(f"feature {i} must be {{name, type}} with a known type", where=f"{folder / META}")
    return ModelSpec(path=folder, meta=meta)


# ---------------------------------------------------------------------------------------------- schemas
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Pixel = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)]


def _rectangular(rows: list[list[Any]]) -> list[list[Any]]:
    if rows and any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("every row of the image must have the same length")
    return rows


# an image of unknown shape: rows of pixels, all rows as long
ImageValue = Annotated[list[list[Pixel]], Field(min_length=1), AfterValidator(_rectangular)]
FEATURE_TYPES: dict[str, Any] = {"numeric": FiniteFloat, "categorical": str, "text": str, "image": ImageValue}


def image_type(shape: tuple[int, int, int] | None) -> Any:
    """The request type of an image of this (C, H, W) shape: [H][W] pixels for one channel, [H][W][C] for more."""
    if shape is None:
        return ImageValue
    c, h, w = shape

    def exactly(n: int, item: Any) -> Any:
        return Annotated[list[item], Field(min_length=n, max_length=n)]  # type: ignore[valid-type]

    pixel: Any = Pixel if c == 1 else exactly(c, Pixel)
    return exactly(h, exactly(w, pixel))


def _component_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def instance_model(
    model_name: str, features: list[dict[str, str]], image_shape: tuple[int, int, int] | None = None
) -> type[BaseModel]:
    """The pydantic model of one input row for a model: one required field per feature."""
    fields: dict[str, Any] = {}
    for feat in features:
        kind = feat["type"]
        desc = f"{kind} feature"
        if kind == "image":
            typ = image_type(image_shape)
            if image_shape is not None:
                c, h, w = image_shape
                desc = f"image: {h} rows of {w} pixels" + (f" of {c} channels" if c > 1 else "") + ", each 0-255"
        else:
            typ = FEATURE_TYPES[kind]
        fields[feat["name"]] = (typ, Field(..., description=desc))
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"Instance_{_component_name(model_name)}",
        __config__=ConfigDict(extra="forbid", strict=True),
        **fields,
    )


def request_model(model_name: str, instance: type[BaseModel], max_instances: int) -> type[BaseModel]:
    """``{"instance": {...}}`` or ``{"instances": [{...}, ...]}`` (1 to ``max_instances`` rows)."""

    def _exactly_one(self: Any) -> Any:
        if (self.instance is None) == (self.instances is None):
            raise ValueError("give exactly one of 'instance' (one row) or 'instances' (a list of rows)")
        return self

    return create_model(  # type: ignore[call-overload,no-any-return]
        f"PredictRequest_{_component_name(model_name)}",
        __config__=ConfigDict(extra="forbid", strict=True),
        __validators__={"exactly_one": model_validator(mode="after")(_exactly_one)},
        instance=(instance | None, Field(None, description="One row to predict.")),
        instances=(
            list[instance] | None,  # type: ignore[valid-type]
            Field(None, min_length=1, max_length=max_instances, description="Rows to predict (a batch)."),
        ),
    )


class ClassPrediction(BaseModel):
    label: str
    probabilities: dict[str, float]
    abstained: bool | None = None  # only for a model with out-of-scope rejection (evaluation.abstain)
    prediction_id: str  # feedback names it (POST /v1/models/NAME/feedback); logged when the model logs


class ValuePrediction(BaseModel):
    value: float
    prediction_id: str


def response_model(model_name: str, task: str) -> type[BaseModel]:
    pred: Any = ClassPrediction if task == "classification" else ValuePrediction
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"PredictResponse_{_component_name(model_name)}",
        model=(str, ...),
        version=(int, ...),
        prediction=(pred | None, None),
        predictions=(list[pred] | None, None),
        latency_ms=(float, ...),
    )


# ---------------------------------------------------------------------------------------------- loading
class NonFiniteOutput(ValueError):
    """The model produced NaN or infinity for some row (inputs far outside the training range)."""


@dataclass
class LoadedVersion:
    """One loaded, warmed-up version of a model."""

    version: int
    spec: ModelSpec
    artifact: Artifact | Searcher
    source: str
    loaded_at: str
    load_seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def _warmup_record(artifact: Artifact) -> dict[str, Any]:
    record: dict[str, Any] = {}
    known = _known_categories(artifact.preprocessor)
    for feat in artifact.features:
        name, kind = feat["name"], feat["type"]
        if kind == "numeric":
            record[name] = 0.0
        elif kind == "categorical":
            record[name] = known.get(name, "")
        elif kind == "text":
            record[name] = "warm-up"
        elif kind == "image":
            shape = artifact.meta.get("input", {}).get("image_shape") or [8, 8]
            hw = shape[-2:] if len(shape) == 3 else shape
            record[name] = np.zeros(tuple(hw), dtype=np.uint8).tolist()
    return record


def _known_categories(preprocessor: Any) -> dict[str, str]:
    """A known level per categorical column, when the preprocessor exposes them (best effort)."""
    for attr in ("categories", "categories_", "levels"):
        value = getattr(preprocessor, attr, None)
        if isinstance(value, dict):
            out = {}
            for col, levels in value.items():
                if isinstance(levels, dict):
                    levels = levels.get("levels") or levels.get("seen") or []
                try:
                    out[str(col)] = str(next(iter(levels)))
                except (StopIteration, TypeError):
                    continue
            return out
    return {}


def make_predictor(artifact: Any) -> Any:
    """``records -> predictions`` for the batcher: one dict per record (label + probabilities, or value); for a
    retrieval model one list of passages per search request."""
    if isinstance(artifact, Searcher):
        return artifact.search_records
    image_cols = [f["name"] for f in artifact.features if f["type"] == "image"]
    classification = artifact.task == "classification"

    def predict(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if image_cols:
            records = [{**r, **{c: np.asarray(r[c], dtype=np.uint8) for c in image_cols if c in r}} for r in records]
        out = artifact.predict_records(records)
        for row in out:
            numbers = row["probabilities"].values() if classification else (row["value"],)
            if not all(math.isfinite(v) for v in numbers):
                row["non_finite"] = True
        return out

    return predict


def load_version(path: str | Path, version: int) -> LoadedVersion:
    """Load the artifact for ``path`` and check it with a warm-up prediction (blocking: call from a thread)."""
    started = time.perf_counter()
    spec = read_spec(path)
    artifact: Any
    if spec.task == "retrieval":  # a bi-encoder and its passage index (serve/search.py has the route)
        artifact = Searcher.load(spec.path)
        predict, record = artifact.search_records, {"query": "warm-up", "k": 1}
    else:
        artifact = Artifact.load(spec.path)
        predict, record = make_predictor(artifact), _warmup_record(artifact)
    try:
        result = predict([record])
    except ShipyardError as exc:
        raise ShipyardError(f"warm-up prediction failed: {exc}", where=str(spec.path)) from exc
    except Exception as exc:
        raise ShipyardError(f"warm-up prediction failed: {type(exc).__name__}: {exc}", where=str(spec.path)) from exc
    if len(result) != 1:
        raise ShipyardError("warm-up prediction returned no result", where=str(spec.path))
    seconds = time.perf_counter() - started
    log.info("loaded %s (backend %s) as version %d in %.2fs", spec.path, spec.backend, version, seconds)
    return LoadedVersion(
        version=version,
        spec=spec,
        artifact=artifact,
        source=str(path),
        loaded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        load_seconds=round(seconds, 3),
    )


def same_schema(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two versions take the same inputs and give the same kind of output (labels may differ)."""
    return a.task == b.task and a.features == b.features
