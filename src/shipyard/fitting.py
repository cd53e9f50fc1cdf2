"""How the pipeline builds and fits each model family: what the family asks of the data, the build, the trainer.

Families declare it at registration (``shipyard.models.registry.Family``): the ``data.cleaning`` settings they
need (trees: categories as ordinal codes), the text encoder they bring, build parameters from the fitted data (a
learnt vocabulary's size) and their trainer: the torch engine (with soups), or LightGBM's boosting for trees.
The pipeline calls these four functions in order, so every family fits the same run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.config.schema import Job


def family_of(job: Job) -> Any:
    from shipyard.models.registry import get_family

    return get_family(job.model.type)


def data_job(job: Job) -> Job:
    """The job the data stage runs: the user's, with the cleaning settings the model family needs."""
    family = family_of(job)
    if not family.cleaning:
        return job
    cleaning = job.data.cleaning.with_changes("data.cleaning", **family.cleaning)
    return job.model_copy(update={"data": job.data.model_copy(update={"cleaning": cleaning})})


def text_encoder_for(job: Job) -> Any:
    """The encoder a text family names (models and data know nothing of each other, so the choice is made
    here): ``vocabulary``, a vocabulary learnt from the training split (data/vocab.py); otherwise the model's
    own pretrained tokenizer (data/text.py)."""
    family = family_of(job)
    if "text" not in family.input_kinds:
        return None
    if family.text_encoder == "vocabulary":
        from shipyard.data.vocab import VocabEncoder

        p = family.params.model_validate(job.model.params())
        return VocabEncoder(
            tokenizer=p.tokenizer,
            tokenizer_vocab=p.tokenizer_vocab,
            ngram_range=tuple(p.ngram_range),
            max_features=p.max_features,
            min_count=p.min_count,
            max_length=job.data.text.max_length,
        )
    from shipyard.data.text import make_text_encoder

    return make_text_encoder(job.model.params(), job.data.text)


def check_family(job: Job, *, dp_config: Any, world_size: int) -> None:
    """Refuse, before any folder exists, what the family's trainer cannot do (DP-SGD, torchrun, soups on trees)."""
    if family_of(job).trainer == "trees":
        from shipyard.training.trees import check_applicable

        check_applicable(job.model.type, privacy=dp_config, world_size=world_size, training=job.training)


def uses_target_scale(job: Job) -> bool:
    """Torch regressors learn a standardised target; trees split on the target in its own units."""
    return job.task == "regression" and family_of(job).trainer == "engine"


def build(job: Job, prepared: Any, target_scale: Any) -> tuple[Any, dict[str, Any]]:
    """The untrained model and the build parameters that came from the data (the artifact records them)."""
    from shipyard.models.registry import build_for_task

    family = family_of(job)
    extra = family.data_params(prepared.preprocessor) if family.data_params else {}
    model = build_for_task(job.model.type, {**job.model.params(), **extra}, prepared.input_spec, target_scale)
    inner = getattr(model, "inner", model)  # a regression wrapper holds the family's module
    if hasattr(inner, "adapt"):  # statistics of the fitted data the module keeps (idf, categorical columns)
        inner.adapt(prepared.preprocessor)
    return model, extra


def fit(
    job: Job,
    make_engine: Any,
    engine: Any,
    model: Any,
    train: Any,
    val: Any,
    run_dir: Path,
    resume: bool,
    *,
    labels: Any = None,
    show_progress: bool = True,
    deadline: float | None = None,
) -> Any:
    """Train ``model`` with its family's trainer; returns the trainer's ``FitResult``. ``deadline`` (a
    ``time.monotonic()`` value, from :func:`deadline_for`) stops training with the best model so far."""
    validation = val if len(val.target) else None
    if family_of(job).trainer == "trees":  # boosting is one seeded pass: a resumed run boosts again
        from shipyard.training.trees import fit_trees

        return fit_trees(
            model, train, validation, run_dir, cfg=job.training, labels=labels, show_progress=show_progress,
            deadline=deadline,
        )  # fmt: skip
    if job.training.soup is not None:  # several runs from the same start, weight-averaged (training/soup.py)
        from shipyard.training.soup import fit_soup

        return fit_soup(make_engine, model, train, validation, run_dir, job.training, job.task, resume=resume)
    return engine.fit(model, train, validation, run_dir, resume=resume, deadline=deadline)


def deadline_for(job: Job) -> float | None:
    """When training must stop: ``training.max_time`` from now (the run's start, so data preparation counts)."""
    from shipyard.training.time_limit import deadline_after

    return deadline_after(job.training.max_time)
