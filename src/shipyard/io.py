"""Atomic writes: every artefact goes to a temp file in the same folder and is renamed into place, so a crash
never leaves a half-written file behind.

File modes (docs/contracts.md, "Writing files"): a file is readable as the process umask allows (0644 under the
usual 022), like any file the user creates, so a model trained by one user can be served by another; files that
hold personal data or secrets (stored splits, the SQLite stores) are written with ``private=True``: 0600.

A full disk, an exceeded quota or a read-only / forbidden folder is bad environment, not a bug: those OSErrors
become a ShipyardError that names the path and what to do (:func:`storage_error`).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError

PRIVATE_MODE = 0o600
# a run folder holds this file from its creation until its report and model card are written (pipeline.py);
# loaders refuse a run that still has it (artifact.refuse_incomplete), so a crashed run never looks servable
INCOMPLETE = ".incomplete"
RUN_INFO = "run.json"  # {"run_id", "base_dir"}: base_dir is the folder relative data paths resolve against
_ELSEWHERE = "write to a folder you may write to (e.g. output.runs_root or --run-dir) and rerun"
_STORAGE_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", "free some space (or write the run elsewhere) and rerun"),
    errno.EDQUOT: ("disk quota exceeded", "free some space within your quota (or write the run elsewhere) and rerun"),
    errno.EROFS: ("the file system is read-only", _ELSEWHERE),
    errno.EACCES: ("permission denied", _ELSEWHERE),
    errno.EPERM: ("operation not permitted", _ELSEWHERE),
}
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode(private: bool = False) -> int:
    """The mode a new file gets: 0600 when private, else what ``open()`` would give (0666 less the umask)."""
    return PRIVATE_MODE if private else 0o666 & ~current_umask()


def storage_error(exc: BaseException, path: Path | str | None = None) -> ShipyardError | None:
    """A ShipyardError for a full disk / quota / read-only or forbidden folder, else None (a real bug)."""
    if not isinstance(exc, OSError) or exc.errno not in _STORAGE_ERRNOS:
        return None
    what, hint = _STORAGE_ERRNOS[exc.errno]
    where = str(path or exc.filename or "")
    return ShipyardError(f"cannot write: {what}", where=where or None, hint=hint)


def _atomic(path: Path, write: Callable[[Path], None], *, private: bool = False) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise (storage_error(exc, path) or exc) from exc
    try:
        write(Path(tmp))
        # mkstemp makes 0600 (and some writers recreate the file): honour the umask unless the data is private
        os.chmod(tmp, file_mode(private))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        mapped = storage_error(exc, path)
        if mapped is not None:
            raise mapped from exc
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes, *, private: bool = False) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return _atomic(path, write, private=private)


def atomic_write_text(path: Path, text: str, *, private: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), private=private)


def atomic_write_json(path: Path, obj: Any, *, private: bool = False) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    return atomic_write_text(path, text, private=private)


def atomic_write_parquet(path: Path, frame: Any, *, private: bool = True) -> Path:
    """A DataFrame as Parquet; private by default (stored splits hold raw rows, ids included)."""
    return _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False), private=private)


def atomic_save_safetensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file  # heavy: io stays light (config imports it)

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return _atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def atomic_save_arrays(path: Path, arrays: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    """NumPy arrays as one safetensors file (no pickle: loading it runs no code); private (0600): stored image
    splits hold raw rows."""
    import numpy as np  # io stays light (config imports it): only writers of arrays need these two
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return _atomic(path, lambda tmp: save_file(arrays, str(tmp), metadata=metadata), private=True)


def atomic_torch_save(path: Path, obj: Any) -> Path:
    import torch  # heavy: io stays light (config imports it)

    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def _json_default(value: Any) -> Any:
    import numpy as np  # io stays light (config imports it)

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# older runs recorded the job file's folder as the first line of config.yaml instead of in run.json
_LEGACY_BASE_DIR_COMMENT = "# shipyard base_dir: "


def recorded_base_dir(run_dir: Path) -> Path:
    """The folder a run's relative data paths resolve against: the job file's folder, as training recorded it in
    ``run.json``. Runs from before run.json: the ``# shipyard base_dir:`` line of their config.yaml, else the
    working directory."""
    run_dir = Path(run_dir)
    try:
        return Path(json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))["base_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(run_dir / "config.yaml", encoding="utf-8") as fh:
            first = fh.readline()
        if first.startswith(_LEGACY_BASE_DIR_COMMENT):
            return Path(json.loads(first[len(_LEGACY_BASE_DIR_COMMENT) :]))
    except (OSError, ValueError):
        pass
    return Path.cwd()
