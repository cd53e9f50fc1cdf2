"""Read one data source (a file, an IDX pair, an image or text folder, sklearn's digits) into a pandas DataFrame.

Every failure a user can cause (missing file, empty file, ragged CSV rows, bytes that are not the declared
encoding, a corrupt image, a bad IDX header) is a ShipyardError naming the file and, where there is one, the line
or row. Rows are never dropped silently: blank lines are the only thing skipped.

The frame's index is the 1-based data row number in the file (header not counted), so later stages can name the
row a bad value came from.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd

from shipyard.config.schema import SourceConfig, SourceFormat
from shipyard.data.image_sources import load_idx, load_image_folder, load_sklearn_digits
from shipyard.data.json_records import parse_json, records_at, records_frame
from shipyard.errors import ShipyardError
from shipyard.settings import expand_path

log = logging.getLogger(__name__)

# A JSON document is parsed whole, at several times its size in memory; larger data belongs in JSONL or Parquet.
MAX_JSON_BYTES = 512 * 1024 * 1024

_EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    # UCI-style files (Adult's adult.data / adult.test, california_housing's cal_housing.data) are plain CSV.
    ".data": "csv",
    ".test": "csv",
}


def infer_format(cfg: SourceConfig, path: Path | None) -> str:
    """The source format: the declared one, else guessed from the path."""
    if cfg.format is not None:
        return cfg.format
    if cfg.images and cfg.labels:
        return "idx"
    if path is None:
        raise ShipyardError("cannot tell the source format", hint="set `format`")
    if path.is_dir():  # one .txt file per class and no label sub-folders: a text folder
        has_text = any(p.suffix.lower() == ".txt" for p in path.iterdir() if p.is_file())
        return "text_folder" if has_text and not any(p.is_dir() for p in path.iterdir()) else "images"
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if "-idx" in name or name.endswith("ubyte"):
        return "idx"
    suffix = Path(name).suffix
    if suffix == ".txt" and cfg.line_separator:
        return "delimited_lines"
    if suffix in _EXTENSION_FORMATS:
        return _EXTENSION_FORMATS[suffix]
    raise ShipyardError(
        f"cannot infer the format from the file name (suffix {suffix or 'none'!r})",
        where=str(path),
        hint=f"set `format` to one of {', '.join(get_args(SourceFormat))}",
    )


def load_source(
    cfg: SourceConfig, *, base_dir: Path, field: str = "data.source", text_columns: Collection[str] = ()
) -> pd.DataFrame:
    """Load the rows a source describes. Image-like sources give columns ``image`` and ``label``.

    ``text_columns`` (columns declared text) stay strings in CSV / TSV files, even when every value is a number
    (``00123`` keeps its zeros)."""
    path = expand_path(cfg.path, base_dir) if cfg.path else None
    fmt = infer_format(cfg, path)
    log.info("loading %s (%s) for %s", path if path else fmt, fmt, field)
    if fmt == "sklearn_digits":
        frame = load_sklearn_digits(cfg)
    elif fmt == "idx":
        images = expand_path(cfg.images, base_dir) if cfg.images else path
        labels = expand_path(cfg.labels, base_dir) if cfg.labels else None
        if images is None or labels is None:
            raise ShipyardError("an idx source needs both `images` and `labels` file paths", where=field)
        frame = load_idx(images, labels, cfg)
    else:
        assert path is not None  # the schema requires `path` for every other format
        if fmt == "images":
            frame = load_image_folder(path, cfg)
        elif fmt == "text_folder":
            frame = _load_text_folder(path, cfg)
        else:
            _require_file(path, field)
            if fmt in ("csv", "tsv"):
                frame = _load_delimited(path, cfg, fmt, text_columns)
            elif fmt == "jsonl":
                frame = _load_jsonl(path, cfg)
            elif fmt == "json":
                frame = _load_json(path, cfg)
            elif fmt == "parquet":
                frame = _load_parquet(path, cfg)
            elif fmt == "delimited_lines":
                frame = _load_lines(path, cfg)
            else:  # pragma: no cover - the schema's Literal keeps this unreachable
                raise ShipyardError(f"unsupported format {fmt!r}", where=field)
    frame = _strip_suffixes(frame, cfg, field, path)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    frame.attrs["source"] = str(path) if path else fmt
    log.info("loaded %d rows x %d columns from %s", len(frame), frame.shape[1], frame.attrs["source"])
    return frame


# --------------------------------------------------------------------------------------------------- helpers


def _require_file(path: Path, field: str) -> None:
    if not path.exists():
        raise ShipyardError("file does not exist", where=f"{path} ({field})")
    if path.is_dir():
        raise ShipyardError("expected a file but found a folder", where=f"{path} ({field})", hint="set `format`")
    if path.stat().st_size == 0:
        raise ShipyardError("file is empty; expected at least one row", where=str(path))


def _decode(path: Path, cfg: SourceConfig) -> str:
    """Decode the whole file strictly, naming the line of the first undecodable byte."""
    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        raw = gzip.decompress(raw)
    encoding = cfg.encoding or "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1]
        expected = "UTF-8" if cfg.encoding is None else cfg.encoding
        raise ShipyardError(
            f"byte {bad!r} is not valid {expected}",
            where=f"{path}, line {line}",
            hint="set `encoding` (e.g. latin-1) on the source" if cfg.encoding is None else None,
        ) from None
    except LookupError:
        raise ShipyardError(f"unknown encoding {cfg.encoding!r}", where=f"{path} (encoding)") from None
    if not text.strip():
        raise ShipyardError("file is empty; expected at least one row", where=str(path))
    return text


def _na_set(cfg: SourceConfig) -> set[str]:
    return {"", *cfg.na_values}


def _to_frame(
    columns: list[str], rows: list[list[str]], cfg: SourceConfig, text_columns: Collection[str] = ()
) -> pd.DataFrame:
    """Strings -> frame; a column whose every present value is a number becomes numeric."""
    na = _na_set(cfg)
    data: dict[str, Any] = {}
    for i, name in enumerate(columns):
        values = [None if r[i] in na else r[i] for r in rows]
        series = pd.Series(values, dtype="object")
        data[name] = series if name in text_columns else _maybe_numeric(series)
    return pd.DataFrame(data)


def _maybe_numeric(series: pd.Series) -> pd.Series:
    present = series.dropna()
    if present.empty:
        return series.astype("float64")
    numeric = pd.to_numeric(present, errors="coerce")
    if numeric.notna().all():
        return pd.to_numeric(series, errors="coerce")
    return series


def _header(columns: list[str], cfg: SourceConfig, path: Path) -> list[str]:
    columns = [c.strip() for c in columns]
    if cfg.column_names is not None:
        if len(cfg.column_names) != len(columns):
            raise ShipyardError(
                f"`column_names` lists {len(cfg.column_names)} names but the file has {len(columns)} columns",
                where=f"{path}, line 1",
            )
        columns = list(cfg.column_names)
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise ShipyardError(f"column name {name!r} appears twice in the header", where=f"{path}, line 1")
        seen.add(name)
    return columns


def _load_delimited(path: Path, cfg: SourceConfig, fmt: str, text_columns: Collection[str] = ()) -> pd.DataFrame:
    text = _decode(path, cfg)
    delimiter = cfg.delimiter or ("\t" if fmt == "tsv" else ",")
    # TSV files such as SST-2 hold raw quotes inside sentences; only CSV uses quoting.
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=cfg.skip_initial_space, quoting=quoting
    )
    columns: list[str] | None = None
    rows: list[list[str]] = []
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line (UCI files end with one); not a data row
            if columns is None:
                if cfg.header:
                    columns = _header(record, cfg, path)
                    continue
                if cfg.column_names is not None:
                    columns = _header([""] * len(record), cfg, path)
                else:
                    columns = [f"column_{i}" for i in range(len(record))]
            if len(record) != len(columns):
                raise ShipyardError(
                    f"row {len(rows) + 1} has {len(record)} fields, expected {len(columns)}",
                    where=f"{path}, line {reader.line_num}",
                    hint="check the delimiter and quoting",
                )
            rows.append(record)
            if cfg.limit is not None and len(rows) >= cfg.limit:
                break
    except csv.Error as exc:
        raise ShipyardError(f"malformed CSV: {exc}", where=f"{path}, line {reader.line_num}") from None
    if columns is None:
        raise ShipyardError("file is empty; expected at least one row", where=str(path))
    if not rows:
        raise ShipyardError("file has a header but no data rows", where=str(path))
    return _to_frame(columns, rows, cfg, text_columns)


def _load_jsonl(path: Path, cfg: SourceConfig) -> pd.DataFrame:
    text = _decode(path, cfg)
    records: list[dict[str, Any]] = []
    na = _na_set(cfg) - {""}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            whole = number == 1 and line.strip() in ("[", "{")  # a pretty-printed document, not one record a line
            raise ShipyardError(
                f"invalid JSON: {exc.msg}",
                where=f"{path}, line {number}",
                hint="the file looks like one JSON document: set `format: json`" if whole else None,
            ) from None
        except RecursionError:
            raise ShipyardError("the JSON is nested too deeply to read", where=f"{path}, line {number}") from None
        if not isinstance(record, dict):
            raise ShipyardError(
                f"expected a JSON object per line, got {type(record).__name__}",
                where=f"{path}, line {number}",
                hint="a JSON array of records is `format: json`" if isinstance(record, list) else None,
            )
        records.append({k: (None if isinstance(v, str) and v in na else v) for k, v in record.items()})
        if cfg.limit is not None and len(records) >= cfg.limit:
            break
    if not records:
        raise ShipyardError("file is empty; expected at least one row", where=str(path))
    return pd.DataFrame.from_records(records)


def _load_json(path: Path, cfg: SourceConfig) -> pd.DataFrame:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ShipyardError(
            f"the JSON file is too large to parse whole ({size:,} bytes, at most {MAX_JSON_BYTES:,})",
            where=str(path),
            hint="convert it to JSONL (one record a line) or Parquet",
        )
    document = parse_json(_decode(path, cfg), str(path))
    records = records_at(document, cfg.records_path, path)
    return records_frame(records, path, column_names=cfg.column_names, na=_na_set(cfg) - {""}, limit=cfg.limit)


def _load_text_folder(root: Path, cfg: SourceConfig) -> pd.DataFrame:
    """``root/<label>.txt``, one example a line (the layout many sentiment sets ship in)."""
    if not root.is_dir():
        raise ShipyardError("expected a folder of <label>.txt files", where=str(root))
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        raise ShipyardError("no .txt files found; expected one <label>.txt file per class", where=str(root))
    texts: list[str] = []
    labels: list[str] = []
    for file in files:
        if file.stat().st_size == 0:
            continue  # an empty class file holds no examples; the class check later says so if it matters
        lines = [line for line in _decode(file, cfg).splitlines() if line.strip()]
        if cfg.limit is not None:
            lines = lines[: cfg.limit - len(texts)]
        texts.extend(lines)
        labels.extend([file.stem] * len(lines))
    if not texts:
        raise ShipyardError("the .txt files hold no lines of text", where=str(root))
    return pd.DataFrame({"text": pd.Series(texts, dtype="object"), "label": pd.Series(labels, dtype="object")})


def _load_parquet(path: Path, cfg: SourceConfig) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise ShipyardError(f"cannot read parquet file: {exc}", where=str(path)) from None
    if frame.empty:
        raise ShipyardError("file has no rows", where=str(path))
    if cfg.limit is not None:
        frame = frame.head(cfg.limit)
    if cfg.na_values:
        frame = frame.replace(list(cfg.na_values), np.nan)
    return frame.reset_index(drop=True)


def _load_lines(path: Path, cfg: SourceConfig) -> pd.DataFrame:
    text = _decode(path, cfg)
    sep = cfg.line_separator or cfg.delimiter or "\t"
    texts: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        # The label is after the LAST separator, because sentences may contain the separator themselves.
        head, found, tail = line.rpartition(sep)
        if not found:
            raise ShipyardError(
                f"expected `text{sep}label` but the line has no {sep!r}", where=f"{path}, line {number}"
            )
        texts.append(head)
        labels.append(tail.strip())
        if cfg.limit is not None and len(texts) >= cfg.limit:
            break
    if not texts:
        raise ShipyardError("file is empty; expected at least one row", where=str(path))
    return pd.DataFrame({"text": pd.Series(texts, dtype="object"), "label": pd.Series(labels, dtype="object")})


def _strip_suffixes(frame: pd.DataFrame, cfg: SourceConfig, field: str, path: Path | None) -> pd.DataFrame:
    for column, suffix in cfg.strip_suffix.items():
        if column not in frame.columns:
            raise ShipyardError(
                f"`strip_suffix` names column {column!r}, which the file does not have",
                where=f"{path or field} ({field}.strip_suffix)",
                hint=f"columns: {', '.join(map(str, frame.columns))}",
            )
        series = frame[column]
        frame[column] = _maybe_numeric(
            series.map(lambda v, s=suffix: v.removesuffix(s).strip() if isinstance(v, str) else v).astype("object")
        )
    return frame
