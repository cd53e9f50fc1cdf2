"""A loaded retrieval artefact: the trained bi-encoder, its tokenizer and the passage index, ready to search.

`Searcher.load(model_folder)` is what `serve` and the support application use; `add` / `delete` change the index
(encoding new passages with the same encoder) and `save` writes it back, without retraining.

When `shipyard optimize` has exported the encoder (``model/onnx/``, see optimize/search_encoder.py), queries and
new passages are embedded by ONNX Runtime with the file ``onnx.json`` names (int8 when it passed its check
against torch); ``encoder="torch"`` keeps the torch encoder.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from shipyard.errors import ShipyardError
from shipyard.models.biencoder import BiEncoder, load_biencoder
from shipyard.models.search_index import PassageIndex

META = "shipyard.json"
ONNX_DIR = "onnx"  # model/onnx/: encoder.onnx, encoder.int8.onnx, onnx.json (optimize/search_encoder.py)
ONNX_META = "onnx.json"
Encoder = Literal["auto", "torch", "onnx", "int8"]


class Searcher:
    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        model: BiEncoder,
        index: PassageIndex,
        *,
        onnx_file: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = path
        self.meta = meta
        self.model = model
        self.index = index
        self.tokenizer = model.tokenizer()
        params = meta["model"]["params"]
        self.query_max_length = int(params.get("query_max_length", 32))
        self.passage_max_length = int(params.get("passage_max_length", 128))
        self.ranking: str = meta.get("retrieval", {}).get("ranking", "dense")
        self.rrf_k = int(meta.get("retrieval", {}).get("rrf_k", 60))
        self._lock = threading.Lock()  # index changes and searches from several request threads
        self.onnx_file = onnx_file
        self._session = _ort_session(onnx_file, threads or torch.get_num_threads()) if onnx_file else None

    @classmethod
    def load(cls, path: str | Path, *, encoder: Encoder = "auto") -> Searcher:
        """``encoder``: ``auto`` the exported ONNX encoder when there is one, else torch; ``onnx`` / ``int8`` that
        file (an error when it is missing); ``torch`` the torch encoder."""
        path = Path(path)
        if (path / "model" / META).is_file():
            path = path / "model"
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ShipyardError(f"not a readable model folder ({exc})", where=str(path)) from None
        if meta.get("task") != "retrieval":
            raise ShipyardError(f"the model's task is {meta.get('task')!r}, not retrieval", where=str(path))
        model = load_biencoder(path, meta["model"]["params"])
        return cls(path, meta, model, PassageIndex.load(path), onnx_file=onnx_encoder(path, encoder))

    def embed(self, texts: list[str], *, passages: bool = False, batch_size: int = 64) -> np.ndarray:
        """Unit vectors (N, D) for queries (or passages), in order."""
        max_length = self.passage_max_length if passages else self.query_max_length
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = [t if t.strip() else " " for t in texts[start : start + batch_size]]
                enc = self.tokenizer(chunk, max_length=max_length, truncation=True, padding=True, return_tensors="pt")
                if self._session is not None:
                    feed = {k: enc[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")}
                    out.append(np.asarray(self._session.run(None, feed)[0], dtype=np.float32))
                else:
                    out.append(self.model.embed(enc["input_ids"], enc["attention_mask"]).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.index.dim), dtype=np.float32)

    def search(
        self, queries: list[str], k: int = 5, *, ranking: str | None = None, filters: dict[str, Any] | None = None
    ) -> list[list[dict[str, Any]]]:
        """Top ``k`` passages per query: ``{"id", "text", "group", "score", "metadata"}``, best first."""
        ranking = ranking or self.ranking
        embeddings = self.embed(queries) if ranking != "bm25" else None
        with self._lock:
            found = self.index.search(queries, embeddings, k, ranking, self.rrf_k, filters)
            return [
                [
                    {"id": pid, "score": score, **self.index.passages[pid]}
                    for pid, score in row
                    if pid in self.index.passages
                ]
                for row in found
            ]

    def search_records(self, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """One batch of search requests ``{"query", "k", "filters"?, "ranking"?}``: the queries are embedded
        together (the serving batcher's gain), then each searches the index with its own k and filters."""
        rankings = [r.get("ranking") or self.ranking for r in records]
        dense_rows = [i for i, rk in enumerate(rankings) if rk != "bm25"]
        embedded = self.embed([records[i]["query"] for i in dense_rows]) if dense_rows else None
        where = {row: n for n, row in enumerate(dense_rows)}
        out = []
        with self._lock:
            for i, (record, ranking) in enumerate(zip(records, rankings, strict=True)):
                emb = embedded[where[i] : where[i] + 1] if embedded is not None and i in where else None
                found = self.index.search(
                    [record["query"]], emb, int(record.get("k", 5)), ranking, self.rrf_k, record.get("filters")
                )[0]
                out.append([{"id": pid, "score": sc, **self.index.passages[pid]} for pid, sc in found])
        return out

    def add(self, passages: list[dict[str, Any]]) -> int:
        """Encode and index passages ``{"id", "text", "group"?, "metadata"?}``; returns how many."""
        for n, p in enumerate(passages):
            if not isinstance(p.get("id"), int) or not str(p.get("text") or "").strip():
                raise ShipyardError("each passage needs an integer id and a non-empty text", where=f"passage {n + 1}")
        emb = self.embed([p["text"] for p in passages], passages=True)
        with self._lock:
            self.index.add(
                [p["id"] for p in passages],
                [p["text"] for p in passages],
                [str(p.get("group", "")) for p in passages],
                emb,
                [dict(p.get("metadata") or {}) for p in passages],
            )
        return len(passages)

    def delete(self, ids: list[int]) -> int:
        with self._lock:
            return self.index.delete(ids)

    def save(self) -> None:
        with self._lock:
            self.index.save(self.path)


def onnx_encoder(path: Path, encoder: Encoder) -> Path | None:
    """The exported encoder file to use for ``encoder`` (see `Searcher.load`)."""
    if encoder == "torch":
        return None
    record_path = path / ONNX_DIR / ONNX_META
    if not record_path.is_file():
        if encoder == "auto":
            return None
        raise ShipyardError(
            f"no exported encoder ({ONNX_DIR}/{ONNX_META})", where=str(path), hint="shipyard optimize RUN"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        kind = record["serve"] if encoder == "auto" else ("fp32" if encoder == "onnx" else "int8")
        file = path / ONNX_DIR / record["files"][kind]["file"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ShipyardError(f"unreadable or incomplete {ONNX_META} ({exc!r})", where=str(record_path)) from None
    if not file.is_file():
        raise ShipyardError("the exported encoder file is missing", where=str(file))
    return file


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort  # only when an exported encoder is used

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
