"""shipyard: from raw data to a live, measured model service.

>>> import shipyard
>>> job = shipyard.Job.from_yaml("examples/digits_cnn.yaml")  # doctest: +SKIP
>>> result = shipyard.run(job)                                 # doctest: +SKIP
>>> result.metrics["test"]["accuracy"]                         # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.pipeline import RunResult

__version__ = "0.1.0"
__all__ = ["Job", "ShipyardError", "__version__", "run", "train"]


def run(job: Job, *, run_dir: str | Path | None = None, resume: bool = False, show_progress: bool = False) -> RunResult:
    """Train, evaluate and package ``job``; returns a RunResult (metrics, run folder, report). Relative data paths
    start at the job file's folder (``job.base_dir``), or the working directory for a job built in Python."""
    from shipyard.pipeline import run_job  # the pipeline imports torch: only when something runs

    if job.task == "recommendation":  # its own data, models and metrics, same run folder
        from shipyard.pipeline_recommend import run_recommendation_job as run_job
    elif job.model is not None and job.model.type == "auto":  # candidate runs, then one ensemble (shipyard/auto)
        from shipyard.auto import run_auto as run_job

    return run_job(
        job,
        base_dir=job.base_dir,
        run_dir=Path(run_dir) if run_dir is not None else None,
        resume=resume,
        show_progress=show_progress,
    )


def train(path: str | Path, **options: Any) -> RunResult:
    """Read the job file at ``path`` and run it (``options`` as for :func:`run`)."""
    return run(Job.from_yaml(path), **options)
