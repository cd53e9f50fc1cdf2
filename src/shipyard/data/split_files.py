"""A run's stored splits (``run_dir/splits/``): the one place that writes and reads them, for every later stage.

Tabular and text splits are Parquet (``<split>.parquet``). Image splits are safetensors (``<split>.safetensors``;
no pickle, so opening one runs no code): one uint8 tensor per image column, shaped ``(N, H, W)`` or
``(N, H, W, C)`` as the source gave them (the run's own preprocessor turns them into model inputs), one tensor per
other column (numbers as they are, labels and other strings as int64 codes with their values in the header), and
a JSON header (``shipyard``) naming the columns in order. Read back, an image split is the same frame the pipeline
split: the image column holds one uint8 array per row.

Image rows carry two keys, because an image source has no id column: ``row``, the row's number in the source it
was read from (1-based, the number error messages use: the n-th image of an IDX file or of sklearn's digits, the
n-th file of an image folder in sorted ``<label>/<file>`` order), and ``source``, which of the job's sources that
is (``source``, ``validation_source`` or ``test_source``). An erasure request reaches them like any stored column:
``shipyard data forget RUN --where "source == 'source' and row in [12, 40]"``.

Every stored split file is private (0600) and written atomically (a temporary file, then a rename). A missing or
unreadable file is a ShipyardError naming it: later stages never fall back to the job's data sources.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import ShipyardError
from shipyard.io import atomic_save_arrays, atomic_write_parquet

__all__ = [
    "IMAGE_SPLIT_FORMAT",
    "ROW_COLUMN",
    "SOURCE_COLUMN",
    "SPLIT_NAMES",
    "image_split_frame",
    "read_split",
    "split_path",
    "stored_splits",
    "write_split",
]

SPLIT_NAMES = ("train", "validation", "test")
ROW_COLUMN = "row"
SOURCE_COLUMN = "source"
IMAGE_SPLIT_FORMAT = "shipyard-image-split/1"
_SUFFIXES = (".parquet", ".safetensors")
_HEADER_KEY = "shipyard"
_RESTORE = "the run folder is damaged or incomplete: restore its splits/ from a backup, or train the run again"


def split_path(run_dir: Path, name: str) -> Path | None:
    """The stored file of split ``name`` (Parquet or safetensors), or None when the run kept no rows of it."""
    for suffix in _SUFFIXES:
        path = Path(run_dir) / "splits" / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def stored_splits(run_dir: Path) -> dict[str, Path]:
    """Every stored split file of the run, by split name (a split the run kept no rows of has none)."""
    found = {name: split_path(run_dir, name) for name in SPLIT_NAMES}
    return {name: path for name, path in found.items() if path is not None}


def image_split_frame(frame: pd.DataFrame, source_key: str) -> pd.DataFrame:
    """An image split as it is stored: its columns plus the ``row`` / ``source`` keys (see the module doc). The
    frame's index is the row's number in its source (data/sources.py sets it; cleaning drops rows and splitting
    picks them, neither renumbers)."""
    for key in (ROW_COLUMN, SOURCE_COLUMN):
        if key in frame.columns:
            raise ShipyardError(
                f"an image source cannot have a column named `{key}`: the stored split uses it as a row key",
                where="data.target",
            )
    out = frame.copy()
    out[ROW_COLUMN] = np.asarray(frame.index, dtype=np.int64)
    out[SOURCE_COLUMN] = source_key
    return out.reset_index(drop=True)


def write_split(path: Path, frame: pd.DataFrame) -> Path:
    """Store one split (by the path's suffix), privately and atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        return atomic_write_parquet(path, frame, private=True)
    if path.suffix != ".safetensors":
        raise ShipyardError("a stored split is .parquet or .safetensors", where=str(path))
    arrays, header = _encode(frame, path)
    return atomic_save_arrays(path, arrays, {_HEADER_KEY: json.dumps(header)})


def read_split(path: Path) -> pd.DataFrame:
    """One stored split as a frame; a missing or unreadable file is a ShipyardError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ShipyardError("the stored split is missing", where=str(path), hint=_RESTORE)
    if path.suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ShipyardError(f"the stored split cannot be read: {exc}", where=str(path), hint=_RESTORE) from None
    return _decode(path)


def _is_image_column(series: pd.Series, shapes: dict[str, Any]) -> bool:
    if series.name in shapes:
        return True
    return series.dtype == object and len(series) > 0 and isinstance(series.iloc[0], np.ndarray)


def _encode(frame: pd.DataFrame, path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    shapes: dict[str, Any] = dict(frame.attrs.get("image_shapes") or {})
    arrays: dict[str, np.ndarray] = {}
    header: dict[str, Any] = {"format": IMAGE_SPLIT_FORMAT, "rows": len(frame), "columns": [], "images": {}}
    header["categories"] = {}
    for column in frame.columns:
        series = frame[column]
        name = str(column)
        header["columns"].append(name)
        if _is_image_column(series, shapes):
            arrays[name] = _stack(series, shapes.get(name), path)
            header["images"][name] = list(arrays[name].shape[1:])
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            array = series.to_numpy()
            # a nullable column (Int64 with <NA>) comes out as objects, which safetensors cannot hold: NaN instead
            arrays[name] = series.astype("float64").to_numpy() if array.dtype == object else array
        else:  # strings (a folder's labels, the source key): codes, their values in the header
            codes, values = pd.factorize(series, use_na_sentinel=True)
            arrays[name] = codes.astype(np.int64)
            header["categories"][name] = [v if isinstance(v, str | int | float) else str(v) for v in values.tolist()]
    return arrays, header


def _stack(series: pd.Series, shape: Any, path: Path) -> np.ndarray:
    if len(series) == 0:
        if shape is None:
            raise ShipyardError(f"no image shape known for the empty column `{series.name}`", where=str(path))
        return np.zeros((0, *shape), dtype=np.uint8)
    first = series.iloc[0]
    for row, array in enumerate(series):
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.shape != first.shape:
            raise ShipyardError(
                f"image column `{series.name}` row {row}: expected a uint8 array of shape {first.shape}",
                where=str(path),
            )
    return np.stack(series.to_list())


def _decode(path: Path) -> pd.DataFrame:
    from safetensors import SafetensorError, safe_open  # only image runs store safetensors splits

    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = json.loads((handle.metadata() or {})[_HEADER_KEY])
            if header.get("format") != IMAGE_SPLIT_FORMAT:
                raise ValueError(f"unknown format {header.get('format')!r}, expected {IMAGE_SPLIT_FORMAT!r}")
            arrays = {name: handle.get_tensor(name) for name in header["columns"]}
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as exc:
        raise ShipyardError(
            f"the stored image split cannot be read: {type(exc).__name__}: {exc}", where=str(path), hint=_RESTORE
        ) from None
    rows = int(header["rows"])
    columns: dict[str, Any] = {}
    for name in header["columns"]:
        array = arrays[name]
        if len(array) != rows:
            raise ShipyardError(
                f"column `{name}` holds {len(array)} rows, the header says {rows}", where=str(path), hint=_RESTORE
            )
        if name in header["images"]:
            column = np.empty(rows, dtype=object)
            for i in range(rows):
                column[i] = array[i]  # a view into the one stacked array: no copy per image
            columns[name] = pd.Series(column, dtype="object")
        elif name in header["categories"]:
            values = np.asarray(header["categories"][name], dtype=object)
            codes = array.astype(np.int64)
            if rows and (codes.max() >= len(values) or codes.min() < -1):
                raise ShipyardError(f"column `{name}` has codes outside its values", where=str(path), hint=_RESTORE)
            decoded = np.where(codes >= 0, values[np.clip(codes, 0, None)] if len(values) else None, None)
            columns[name] = pd.Series(decoded, dtype="object")
        else:
            columns[name] = pd.Series(array)
    frame = pd.DataFrame(columns)
    frame.attrs["image_shapes"] = {name: tuple(shape) for name, shape in header["images"].items()}
    frame.attrs["source"] = str(path)
    return frame
