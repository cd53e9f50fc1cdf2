"""ONNX (and int8) export of a retrieval run's query/passage encoder, used by `Searcher` (so by serve's /search and
the support assistant) when present.

`shipyard optimize RUN` on a `task: retrieval` run lands here. The encoder (MiniLM + mean pooling + L2 norm, one
graph) is exported with the platform's exporter (`onnx_export.export_onnx`: the fused ONNX Runtime transformer
graph first), then quantised to dynamic int8 (`quantize.quantize_dynamic_int8`). Each file is checked against
torch on a sample of the run's own texts (held-out queries from ``splits/test.parquet`` when the run folder has
them, plus passages): the cosine between the torch and ONNX Runtime vectors of every row, and whether the best
passage of each query stays the same. A file whose smallest cosine is under ``MIN_COSINE`` is not served.

Everything is written to a scratch folder first and moved into ``model/onnx/`` in one rename, with ``onnx.json``
(the checks, and ``serve``: the file `Searcher` loads by default, int8 when it passed, else fp32; an int8 file
that failed stays for an explicit ``encoder="int8"``, as in bench/retrieval.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json
from shipyard.models.searcher import ONNX_DIR, ONNX_META, Searcher
from shipyard.optimize.onnx_export import export_onnx
from shipyard.optimize.quantize import quantize_dynamic_int8

log = logging.getLogger(__name__)
MIN_COSINE = 0.99  # the smallest per-row cosine a file must reach against torch to be kept


class PooledEncoder(nn.Module):
    """The bi-encoder's embedding as one traceable graph: no trimming to the longest row (a traced ``int()``
    would freeze the width), which changes nothing since masked positions are left out of the mean."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return F.normalize(pooled.float(), dim=-1)


def sample_texts(searcher: Searcher, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(queries, passages) to check with: held-out queries of the run folder when it has them, else passages'
    first words as stand-in queries."""
    rng = np.random.default_rng(seed)
    ids = sorted(searcher.index.passages)
    chosen = rng.choice(len(ids), size=min(n, len(ids)), replace=False)
    passages = [searcher.index.passages[ids[i]]["text"] for i in chosen]
    split = searcher.path.parent / "splits" / "test.parquet"  # the retrieval pipeline's (query, passage, group)
    if split.is_file():
        frame = pd.read_parquet(split, columns=["query"])
        if len(frame):
            picked = frame["query"].astype(str).sample(n=min(n, len(frame)), random_state=seed)
            return list(picked), passages
    return [" ".join(p.split()[:12]) for p in passages], passages


def check(searcher: Searcher, path: Path, queries: list[str], passages: list[str], threads: int) -> dict[str, Any]:
    """Cosine of ONNX Runtime's vectors with torch's, per row, and the same best passage per query."""
    torch_q, torch_p = searcher.embed(queries), searcher.embed(passages, passages=True)
    onnx = Searcher(searcher.path, searcher.meta, searcher.model, searcher.index, onnx_file=path, threads=threads)
    onnx_q, onnx_p = onnx.embed(queries), onnx.embed(passages, passages=True)
    cos = np.concatenate([(torch_q * onnx_q).sum(axis=1), (torch_p * onnx_p).sum(axis=1)])
    same_best = float(np.mean((torch_q @ torch_p.T).argmax(axis=1) == (onnx_q @ onnx_p.T).argmax(axis=1)))
    return {
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "same_best_passage": same_best,
        "rows": len(cos),
        "bytes": path.stat().st_size,
        "ok": bool(cos.min() >= MIN_COSINE),
    }


def export_search_encoder(model_dir: Path, *, int8: bool = True, sample: int = 256, threads: int = 2) -> dict[str, Any]:
    """Write ``model/onnx/`` for the retrieval artefact in ``model_dir`` (a run folder or its ``model/``);
    returns what ``onnx.json`` records. Raises ShipyardError when the fp32 export fails its check."""
    searcher = Searcher.load(model_dir, encoder="torch")
    queries, passages = sample_texts(searcher, sample)
    max_length = searcher.passage_max_length
    enc = searcher.tokenizer(passages[:8], max_length=max_length, truncation=True, padding=True, return_tensors="np")
    inputs = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    scratch = Path(tempfile.mkdtemp(prefix=".onnx-", dir=searcher.path))
    try:
        started = time.perf_counter()
        exporter = export_onnx(PooledEncoder(searcher.model.encoder).eval(), inputs, scratch / "encoder.onnx")
        record: dict[str, Any] = {"exporter": exporter, "min_cosine": MIN_COSINE, "files": {}}
        record["files"]["fp32"] = {"file": "encoder.onnx", **check(searcher, scratch / "encoder.onnx", queries,
                                                                   passages, threads)}  # fmt: skip
        if not record["files"]["fp32"]["ok"]:
            raise ShipyardError(
                f"the ONNX encoder disagrees with torch (smallest cosine {record['files']['fp32']['cosine_min']:.4f}"
                f" < {MIN_COSINE})",
                where=str(searcher.path),
            )
        if int8:
            work = scratch / "work"
            work.mkdir()
            quantize_dynamic_int8(scratch / "encoder.onnx", scratch / "encoder.int8.onnx", work)
            shutil.rmtree(work)
            record["files"]["int8"] = {"file": "encoder.int8.onnx", **check(searcher, scratch / "encoder.int8.onnx",
                                                                            queries, passages, threads)}  # fmt: skip
            if not record["files"]["int8"]["ok"]:  # kept for `encoder="int8"` (bench), never chosen by `auto`
                log.warning("int8 encoder not served: smallest cosine %.4f", record["files"]["int8"]["cosine_min"])
        record["serve"] = "int8" if record["files"].get("int8", {}).get("ok") else "fp32"
        record["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_json(scratch / ONNX_META, record)
        os.chmod(scratch, 0o755)  # mkdtemp makes it owner-only; the model folder's others are readable
        target = searcher.path / ONNX_DIR
        old = searcher.path / f".{ONNX_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(scratch, target)  # the new folder appears whole (or not at all)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("search encoder exported (%s): %s", record["serve"], record["files"])
    return record
