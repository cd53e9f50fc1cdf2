"""``prepare_data``: the whole data stage of a job, from the config to model-ready arrays.

load (source, optional validation/test sources) -> required columns -> column types -> cleaning -> split ->
preprocessor fitted on train -> transform every split -> data-quality summary.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.schema import Job
from shipyard.data.checks import summarize
from shipyard.data.cleaning import clean_frame, count_clipped
from shipyard.data.derive import check_derive, derive_columns
from shipyard.data.pii import apply_pii
from shipyard.data.preprocess import Preprocessor, TextEncoder
from shipyard.data.sources import load_source
from shipyard.data.splits import SPLIT_NAMES, split_frame
from shipyard.data.target import check_class_count
from shipyard.data.text import UNKNOWN_TOKEN_WARN_RATE
from shipyard.data.types import check_column_types, infer_column_types, require_columns
from shipyard.errors import ShipyardError
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)


@dataclass
class SplitArrays:
    inputs: dict[str, np.ndarray]
    target: np.ndarray
    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class PreparedData:
    splits: dict[str, SplitArrays]
    preprocessor: Preprocessor
    summary: dict[str, Any]
    input_spec: InputSpec
    labels: list[str] | None
    column_types: dict[str, str]


def _feature_names(job: Job, frame: pd.DataFrame) -> tuple[list[str], dict[str, str | None]]:
    data = job.data
    specs = data.feature_specs()
    require_columns(frame, data.drop_columns, field="data.drop_columns", where=frame.attrs.get("source"))
    if data.id_column is not None:
        require_columns(frame, [data.id_column], field="data.id_column", where=frame.attrs.get("source"))
    if specs is None:  # every other column, but never the id column (the schema refuses it in data.features)
        skip = {data.target, data.id_column, *data.drop_columns}
        features = [str(c) for c in frame.columns if c not in skip]
        declared: dict[str, str | None] = {}
    else:
        features = [s.name for s in specs if s.name not in data.drop_columns]
        declared = {s.name: s.type for s in specs}
        require_columns(frame, features, field="data.features", where=frame.attrs.get("source"))
    if data.target in features:
        raise ShipyardError(f"the target {data.target!r} is also listed as a feature", where="data.features")
    if not features:
        raise ShipyardError(
            "no feature columns left", where="data.features", hint="every column is the target or in drop_columns"
        )
    return features, declared


def _check_model_takes(
    job: Job,
    column_types: dict[str, str],
    features: list[str],
    text_encoder: TextEncoder | None,
    input_kinds: tuple[str, ...],
) -> None:
    text = [f for f in features if column_types[f] == "text"]
    if not text and input_kinds == ("text",):
        example = features[0] if len(features) == 1 else "<the text column>"
        raise ShipyardError(
            f"model type `{job.model.type}` takes a text column, but no feature is text "
            f"(inferred types: {', '.join(f'{f}: {column_types[f]}' for f in features)})",
            where="data.features",
            hint=f"declare the text column: `data.features: [{{name: {example}, type: text}}]`; a column whose "
            "values are all numbers is read as numeric unless declared text",
        )
    if not text:
        return
    if "text" not in input_kinds or text_encoder is None:
        raise ShipyardError(
            f"column {text[0]!r} is free text, but model type `{job.model.type}` takes {'/'.join(input_kinds)} inputs",
            where=f"data.features ({text[0]})",
            hint="add it to data.drop_columns, declare it `type: categorical`, or use a text model",
        )


def prepare_data(
    job: Job,
    *,
    base_dir: Path,
    text_encoder: TextEncoder | None = None,
    input_kinds: tuple[str, ...] | None = None,
) -> PreparedData:
    """Run the data stage of ``job``; paths in the config are relative to ``base_dir``.

    ``input_kinds`` are what the job's model family takes (``tabular``, ``image``, ``text``: the pipeline passes
    them from the model registry, so the data layer never imports the models layer); a text column for a family
    that takes none is refused here, before any run folder exists. Left out: a text family when ``text_encoder`` is
    given, else a tabular / image one."""
    if input_kinds is None:
        input_kinds = ("text",) if text_encoder is not None else ("tabular", "image")
    data = job.data
    started = time.perf_counter()
    # a column declared text is read as strings, so `12345` stays the text "12345" (and `007` keeps its zeros)
    text = [s.name for s in data.feature_specs() or [] if s.type == "text"]
    frames, pii_reports = _load_frames(job, base_dir, text)

    main = frames["source"]
    features, declared = _feature_names(job, main)
    column_types = infer_column_types(main, features, data.target, declared)
    if job.task == "classification":  # a price read as classes is refused here, before any run folder exists
        check_class_count(main[data.target], where=f"{main.attrs.get('source')} (data.target)")
    _check_model_takes(job, column_types, features, text_encoder, input_kinds)
    check_derive(data.derive, column_types, [str(c) for c in main.columns])

    keep = list(dict.fromkeys([*features, data.target]))
    # sensitive columns (for fairness reports) and the id column (for erasure requests, data/forget.py) travel
    # with the frame, and so into the stored splits, without being features
    extras = [c for c in job.evaluation.sensitive_features if c in main.columns and c not in keep]
    if data.id_column is not None and data.id_column not in extras:
        extras.insert(0, data.id_column)
    cleaned, cleaning_counts = _clean_frames(job, frames, features, keep, extras, column_types)

    seed = data.split.seed if data.split.seed is not None else job.training.seed
    parts = split_frame(
        cleaned["source"],
        data.split,
        seed=seed,
        task=job.task,
        target=data.target,
        validation=cleaned.get("validation"),
        test=cleaned.get("test"),
    )

    pre = _preprocessor(job, features, column_types, text_encoder)
    pre.fit(parts["train"])
    splits: dict[str, SplitArrays] = {}
    for name in SPLIT_NAMES:
        frame = parts[name]
        splits[name] = SplitArrays(
            inputs=pre.transform(frame), target=pre.encode_target(frame[data.target]), frame=frame
        )

    extra = _summary_extra(job, seed, text_encoder, pii_reports, pre, parts)
    summary = summarize(
        parts,
        target=data.target,
        task=job.task,
        features=features,
        column_types=column_types,
        cleaning=cleaning_counts,
        extra=extra,
    )
    spec = pre.input_spec(job.task)
    log.info(
        "data prepared in %.1fs: %s, %s", time.perf_counter() - started, {k: len(v) for k, v in splits.items()}, spec
    )
    return PreparedData(
        splits=splits, preprocessor=pre, summary=summary, input_spec=spec, labels=pre.labels, column_types=column_types
    )


def _preprocessor(
    job: Job, features: list[str], column_types: dict[str, str], text_encoder: TextEncoder | None
) -> Preprocessor:
    """The job's preprocessor, unfitted. Derived features are model inputs computed from the raw columns
    (data/derive.py); ``column_types`` stays the raw columns, which the artefact (and so a request) asks for."""
    data = job.data
    return Preprocessor(
        features=[*features, *data.derive],
        column_types={**column_types, **dict.fromkeys(data.derive, "numeric")},
        target=data.target,
        task=job.task,
        cleaning=data.cleaning,
        text_encoder=text_encoder,
        derive=data.derive,
    )


def _load_frames(job: Job, base_dir: Path, text: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The job's sources as frames (``source``, and ``validation`` / ``test`` when given), each with the target,
    after the personal-data step; and that step's counts per source."""
    data = job.data
    frames: dict[str, pd.DataFrame] = {
        "source": load_source(data.source, base_dir=base_dir, field="data.source", text_columns=text)
    }
    for key, extra_source in (("validation", data.validation_source), ("test", data.test_source)):
        if extra_source is not None:
            frames[key] = load_source(extra_source, base_dir=base_dir, field=f"data.{key}_source", text_columns=text)
    for key, frame in frames.items():
        field = "data.target" if key == "source" else f"data.target (in data.{key}_source)"
        require_columns(frame, [data.target], field=field, where=frame.attrs.get("source"))
    # personal data (data/pii.py): the `data.pii` step runs on the loaded rows, before cleaning; counts only
    pii_reports: dict[str, Any] = {}
    if data.pii is not None:
        for key, frame in list(frames.items()):
            out, pii_reports[key] = apply_pii(frame, data.pii)
            out.attrs.update(frame.attrs)
            frames[key] = out
    return frames, pii_reports


def _clean_frames(
    job: Job,
    frames: dict[str, pd.DataFrame],
    features: list[str],
    keep: list[str],
    extras: list[str],
    column_types: dict[str, str],
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Each frame's columns checked against the inferred types and cleaned; the cleaning counts per source."""
    data = job.data
    cleaned: dict[str, pd.DataFrame] = {}
    cleaning_counts: dict[str, Any] = {}
    for key, frame in frames.items():
        source = frame.attrs.get("source", key)
        if key != "source":
            require_columns(frame, features, field=f"data.features (in data.{key}_source)", where=source)
            if data.id_column is not None:  # a split without ids could not honour an erasure request
                require_columns(frame, [data.id_column], field=f"data.id_column (in data.{key}_source)", where=source)
        cols = keep + [c for c in extras if c in frame.columns]
        checked = check_column_types(frame[cols], column_types, where=source)
        if column_types.get(data.target) == "label" and job.task == "regression":
            checked = check_column_types(checked, {data.target: "numeric"}, where=source)
        out, counts = clean_frame(
            checked, data.cleaning, column_types, target=data.target, where=source, id_column=data.id_column
        )
        out.attrs["source"] = source
        cleaned[key] = out
        cleaning_counts[key] = counts
    return cleaned, cleaning_counts


def _summary_extra(
    job: Job,
    seed: int,
    text_encoder: TextEncoder | None,
    pii_reports: dict[str, Any],
    pre: Preprocessor,
    parts: dict[str, pd.DataFrame],
) -> dict[str, Any]:
    """The data summary's entries beyond the per-split statistics: split, text lengths and unknown tokens, PII
    counts, clipped outliers."""
    data = job.data
    extra: dict[str, Any] = {
        "split": {
            "method": data.split.method,
            "seed": seed,
            "validation_source": data.validation_source is not None,
            "test_source": data.test_source is not None,
        }
    }
    if text_encoder is not None and getattr(text_encoder, "stats", None):
        extra["text_lengths"] = {"train": text_encoder.stats}  # tokens per example, truncated share
        rate = float(text_encoder.stats.get("unknown_token_rate", 0.0))
        extra["unknown_tokens"] = {  # an encoder that cannot read the language (issue #12): stated, not hidden
            "train_rate": rate,
            "warn_above": UNKNOWN_TOKEN_WARN_RATE,
            "warning": rate > UNKNOWN_TOKEN_WARN_RATE,
            # models that learn the vocabulary from this data instead (models/text_scratch.py)
            **(
                {"suggestion": "model types text_linear, text_bag and text_cnn learn their own vocabulary"}
                if rate > UNKNOWN_TOKEN_WARN_RATE
                else {}
            ),
        }
    if pii_reports:  # the PII step's counts (never values), for the summary and the model card
        extra["pii"] = pii_reports
    if data.derive:
        extra["derived_features"] = dict(data.derive)
    if data.cleaning.clip_outliers is not None and pre.numeric:
        lo, hi = pre.stats["numeric.clip_low"], pre.stats["numeric.clip_high"]
        extra["outliers_clipped"] = {
            name: {
                col: count_clipped(pd.to_numeric(frame[col], errors="coerce").to_numpy(float), lo[j], hi[j])
                for j, col in enumerate(pre.numeric)
            }
            for name, frame in ((n, derive_columns(parts[n], pre.derive)) for n in SPLIT_NAMES)
        }
    return extra
