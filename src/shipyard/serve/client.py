"""Client side of the REST service: ``shipyard predict --url URL --model NAME --input FILE``.

Reads CSV or JSONL rows, asks the server for the model's input schema (``GET /v1/models/NAME``), casts each
column to what the schema says (numeric -> float, categorical/text -> string), drops the target column if the
file has it, and sends the rows in batches of the server's ``max_instances``. A 429 or 503 is retried after the
server's ``Retry-After``. Predictions are written like the local ``shipyard predict``: ``label`` + ``p_<label>``
columns, or ``value``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.data.rows import write_table
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 503}
MAX_RETRIES = 5


def _read_rows(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ShipyardError("input file not found", where=str(path))
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=True)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ShipyardError(f"cannot read the input: {exc}", where=str(path)) from None
    raise ShipyardError("input must be .csv, .tsv or .jsonl", where=str(path))


def _records(frame: pd.DataFrame, features: list[dict[str, str]], source: str) -> list[dict[str, Any]]:
    names = [f["name"] for f in features]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ShipyardError(
            f"the input has no column(s) {', '.join(repr(m) for m in missing)}",
            where=source,
            hint=f"the model needs: {', '.join(names)}",
        )
    records: list[dict[str, Any]] = []
    for i, row in enumerate(frame[names].itertuples(index=False, name=None)):
        rec: dict[str, Any] = {}
        for feat, value in zip(features, row, strict=True):
            name, kind = feat["name"], feat["type"]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise ShipyardError(
                    f"missing value in column {name!r}; the server needs every feature",
                    where=f"{source}, row {i + 1}",
                )
            if kind == "numeric":
                try:
                    rec[name] = float(value)
                except (TypeError, ValueError):
                    raise ShipyardError(
                        f"column {name!r} must be a number, got {value!r}", where=f"{source}, row {i + 1}"
                    ) from None
            elif kind == "image":
                rec[name] = value
            else:
                rec[name] = str(value)
        records.append(rec)
    return records


def _error_text(response: Any) -> str:
    try:
        err = response.json().get("error", {})
        text = str(err.get("message") or response.text)
        if err.get("field"):
            text += f" (field {err['field']})"
        return text
    except (ValueError, AttributeError):
        return response.text[:300]


def _request(client: Any, method: str, url: str, **kwargs: Any) -> Any:
    import httpx  # httpx: only for a remote call

    for attempt in range(MAX_RETRIES + 1):
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ShipyardError(f"cannot reach the server: {exc}", where=url) from None
        if response.status_code in RETRY_STATUSES and attempt < MAX_RETRIES:
            wait = float(response.headers.get("Retry-After", "1") or 1)
            log.info("server answered %d; retrying in %.0fs", response.status_code, wait)
            time.sleep(min(wait, 30.0))
            continue
        return response
    raise AssertionError("unreachable")


def predict_remote(url: str, model: str, input_file: Path, output_file: Path | None, api_key: str | None) -> int:
    """Predict every row of ``input_file`` with ``model`` on the server at ``url``; returns the row count."""
    import httpx  # only `predict --url` needs the HTTP client

    input_file = Path(input_file)
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(headers=headers, timeout=60.0) as client:
        info = _request(client, "GET", f"{base}/v1/models/{model}")
        if info.status_code != 200:
            raise ShipyardError(f"server refused: {_error_text(info)}", where=f"{base}/v1/models/{model}")
        meta = info.json()
        frame = _read_rows(input_file)
        target = meta.get("target")
        if target and target in frame.columns:
            frame = frame.drop(columns=[target])
        features = meta["input_schema"]["features"]
        extra = [c for c in frame.columns if c not in {f["name"] for f in features}]
        if extra:
            log.warning("ignoring column(s) the model does not use: %s", ", ".join(map(str, extra)))
        records = _records(frame, features, str(input_file))
        step = max(1, int(meta.get("max_instances") or 64))
        predictions: list[dict[str, Any]] = []
        for start in range(0, len(records), step):
            chunk = records[start : start + step]
            response = _request(
                client,
                "POST",
                f"{base}/v1/models/{model}/predict",
                content=json.dumps({"instances": chunk}),
                headers={"Content-Type": "application/json"},
            )
            if response.status_code != 200:
                where = f"{input_file}, rows {start + 1}-{start + len(chunk)}"
                raise ShipyardError(f"server refused ({response.status_code}): {_error_text(response)}", where=where)
            predictions.extend(response.json()["predictions"])
    out = pd.DataFrame(index=range(len(predictions)))
    if meta["task"] == "classification":
        out["label"] = [p["label"] for p in predictions]
        for name in meta.get("labels") or []:
            out[f"p_{name}"] = [p["probabilities"].get(name) for p in predictions]
    else:
        out["value"] = [p["value"] for p in predictions]
    if output_file is not None:
        write_table(out, Path(output_file))
    return len(out)
