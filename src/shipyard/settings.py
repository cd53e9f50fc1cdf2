"""Run-time settings read from the environment. Only the data folder for now."""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.errors import ShipyardError

DATA_DIR_ENV = "SHIPYARD_DATA_DIR"


def _candidates() -> list[Path]:
    here = Path(__file__).resolve()
    roots = [Path.cwd(), *here.parents[:4]]
    return [root / ".." / "shared" / "data" for root in roots] + [root / "shared" / "data" for root in roots]


def find_data_dir() -> Path | None:
    """The shared data folder, or None when this machine has none."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        return path.resolve() if path.is_dir() else None
    for candidate in _candidates():
        if (candidate / "README.md").is_file() or (candidate / "mnist").is_dir():
            return candidate.resolve()
    return None


def data_dir() -> Path:
    path = find_data_dir()
    if path is None:
        env = os.environ.get(DATA_DIR_ENV)
        where = f"{DATA_DIR_ENV}={env}" if env else DATA_DIR_ENV
        raise ShipyardError(
            "the shared data folder was not found",
            where=where,
            hint=f"set {DATA_DIR_ENV} to the folder that holds mnist/, sst2/, adult/ ...",
        )
    return path


def expand_path(raw: str, base_dir: Path) -> Path:
    """Expand ``${SHIPYARD_DATA_DIR}`` and ``~``; relative paths are taken from ``base_dir``."""
    if "${" + DATA_DIR_ENV + "}" in raw:
        raw = raw.replace("${" + DATA_DIR_ENV + "}", str(data_dir()))
    path = Path(os.path.expanduser(raw))
    return path if path.is_absolute() else (base_dir / path)
