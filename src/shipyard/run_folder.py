"""A run folder's name and first files: the run id, the folder it goes in, the resolved job as YAML, and what a
finished run returns. Shared by every kind of run (pipeline.py, pipeline_recommend.py, pipeline_retrieval.py)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError

__all__ = ["RunResult", "config_hash", "dump_config", "new_run_id", "record_start", "resolve_run_dir"]


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    metrics: dict[str, Any]
    report: Path | None = None
    fit: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, Any]:
        return self.metrics.get("test", {})


def config_hash(job: Job) -> str:
    canonical = json.dumps(job.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_run_id(job: Job) -> str:
    """``<time>-<name>-<config hash>-<random>``: the random part keeps two identical jobs started in the same
    second apart."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    family = job.model.type if job.model is not None else job.recommend.model.type  # type: ignore[union-attr]
    name = (job.name or job.output.name or f"{family}-{job.task}").replace(" ", "_").replace("/", "_")
    return f"{stamp}-{name}-{config_hash(job)[:6]}-{secrets.token_hex(3)}"


def resolve_run_dir(job: Job, base_dir: Path, run_dir: Path | None) -> tuple[str, Path]:
    if run_dir is None and job.output.run_dir:
        run_dir = Path(job.output.run_dir)
        run_dir = run_dir if run_dir.is_absolute() else base_dir / run_dir
    if run_dir is not None:
        return Path(run_dir).name, Path(run_dir)
    run_id = new_run_id(job)
    root = Path(job.output.runs_root)
    return run_id, (root if root.is_absolute() else Path.cwd() / root) / run_id


def dump_config(job: Job) -> str:
    return yaml.safe_dump(job.model_dump(mode="json", exclude_none=False), sort_keys=False)


def record_start(store: Any, job: Job, run_id: str, run_dir: Path, *, resume: bool) -> None:
    """The run's row in the run store: reopened when a resumed run is already there, else started."""
    if resume:
        try:
            store.get(run_id)
        except ShipyardError:
            pass
        else:
            store.reopen_run(run_id)
            return
    store.start_run(
        run_id,
        run_dir,
        name=job.name or run_id,
        task=job.task,
        model_type=job.model.type if job.model is not None else "",
        config=job.model_dump(mode="json"),
        config_hash=config_hash(job),
        seed=job.training.seed,
    )
