"""Load a job from YAML and report every problem at once, each with its YAML path, line and a suggestion.

The file is read by config/yaml_file.py (bounded, with a line for every key) and validated by ``Job.from_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.config.errors import ConfigError, Problem
from shipyard.config.schema import Job
from shipyard.config.yaml_file import MAX_CONFIG_BYTES, MAX_EXPANDED_NODES, parse_yaml, read_yaml_file

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_EXPANDED_NODES",
    "ConfigError",
    "Problem",
    "load_job",
    "parse_yaml",
    "validate_dict",
    "validate_file",
]


def validate_dict(data: dict[str, Any], file: str = "<config>", lines: dict | None = None) -> Job:
    return Job.from_dict(data, file, lines)


def load_job(path: str | Path) -> Job:
    """Read and validate a job file; raises ConfigError listing every problem. Unlike ``Job.from_yaml`` the job
    records no base folder (a run's own config.yaml: its data paths start where run.json says)."""
    data, lines = read_yaml_file(path)
    return validate_dict(data, str(path), lines)


def validate_file(path: str | Path) -> list[Problem]:
    try:
        load_job(path)
    except ConfigError as exc:
        return exc.problems
    return []
