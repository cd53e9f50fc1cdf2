"""The passage index of a retrieval artefact: FAISS over the passage embeddings, BM25 over their words, and
reciprocal rank fusion of the two.

Layout of ``<model>/index/``: ``passages.jsonl`` (id, text, group, metadata per passage), ``dense.faiss``
(`faiss.write_index`'s own binary format, not pickle). Exact inner-product search (``IndexFlatIP``) up to
``hnsw_above`` passages, HNSW past it (bench/retrieval.py measured both). Ids are the passages' own int64 ids
(``IndexIDMap2``), so adding and deleting passages changes the index in place, never the encoder. BM25 (`bm25s`)
has no incremental update: it is rebuilt from the passages after every change (about a second per 10k passages).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.retrieval import IndexConfig
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

INDEX_DIR = "index"
# a filtered search ranks this many passages before filtering (all of them in an FAQ-sized collection)
FILTERED_FETCH = 10_000
_WORD = re.compile(r"[a-z0-9]+")
_STOP_TEXT = (
    "a an and are as at be but by for from has have how i if in into is it its me my of on or our so "
    "that the their them there these they this to was we were what when where which who will with you "
    "your can do does i'm im"
)
STOPWORDS = frozenset(_STOP_TEXT.split(" "))


def _faiss() -> Any:
    """faiss, with one OpenMP thread: a single query gains nothing from threads, and on a busy machine OpenMP's
    spinning threads made a 3,000-passage search take 48 ms instead of 0.3 ms (bench/retrieval.py)."""
    import faiss  # optional heavy dependency: only retrieval artefacts need it

    faiss.omp_set_num_threads(int(os.environ.get("SHIPYARD_FAISS_THREADS", "1")))
    return faiss


def words(text: str) -> list[str]:
    """BM25's tokens: lower-cased alphanumeric runs without common English stop words."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS] or ["_empty_"]


def rrf(rankings: list[list[int]], k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum of 1 / (k + rank) over the rankings, best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


@dataclass
class PassageIndex:
    dim: int
    config: IndexConfig
    passages: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {text, group, metadata}
    dense: Any = None
    _bm25: Any = None
    _bm25_ids: list[int] = field(default_factory=list)

    # ------------------------------------------------------------------ building
    def kind_for(self, n: int) -> str:
        if self.config.kind != "auto":
            return self.config.kind
        return "hnsw" if n > self.config.hnsw_above else "flat"

    def _new_dense(self, n: int) -> Any:
        faiss = _faiss()
        if self.kind_for(n) == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = self.config.ef_search
            return faiss.IndexIDMap2(inner)
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def add(
        self,
        ids: list[int],
        texts: list[str],
        groups: list[str],
        embeddings: np.ndarray,
        metadata: list[dict[str, Any]] | None = None,
    ) -> None:
        """Add passages (their embeddings from the artefact's encoder); an id already present is an error."""
        clash = [i for i in ids if i in self.passages]
        if clash:
            raise ShipyardError(
                f"passage id(s) already indexed: {clash[:5]}",
                where="index.add",
                hint="delete them first, or use new ids",
            )
        if len(set(ids)) != len(ids):
            raise ShipyardError("the same passage id appears twice in one add", where="index.add")
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.shape != (len(ids), self.dim):
            raise ShipyardError(f"embeddings shape {emb.shape} != ({len(ids)}, {self.dim})", where="index.add")
        if self.dense is None:
            self.dense = self._new_dense(len(ids))
        elif self.kind_for(len(self.passages) + len(ids)) != self.kind_of_dense():
            self._rebuild_dense(extra=(ids, emb))  # crossing hnsw_above: move to the other structure
            emb = None
        if emb is not None:
            self.dense.add_with_ids(emb, np.asarray(ids, dtype=np.int64))
        for i, (pid, text, group) in enumerate(zip(ids, texts, groups, strict=True)):
            self.passages[int(pid)] = {"text": text, "group": group, "metadata": (metadata or [{}] * len(ids))[i]}
        self._bm25 = None

    def delete(self, ids: list[int]) -> int:
        """Remove passages; returns how many were there. HNSW cannot remove in place: it is rebuilt."""
        present = [int(i) for i in ids if int(i) in self.passages]
        if not present:
            return 0
        if self.kind_of_dense() == "flat":
            self.dense.remove_ids(np.asarray(present, dtype=np.int64))
            for pid in present:
                del self.passages[pid]
        else:
            for pid in present:
                del self.passages[pid]
            self._rebuild_dense()
        self._bm25 = None
        return len(present)

    def kind_of_dense(self) -> str:
        faiss = _faiss()

        return "hnsw" if isinstance(faiss.downcast_index(self.dense.index), faiss.IndexHNSW) else "flat"

    def _rebuild_dense(self, extra: tuple[list[int], np.ndarray] | None = None) -> None:
        """A fresh dense index over the live passages (vectors reconstructed from the old one) plus ``extra``."""
        live = [pid for pid in self.passages]
        vectors = np.stack([self.dense.reconstruct(pid) for pid in live]) if live else np.zeros((0, self.dim))
        ids = np.asarray(live, dtype=np.int64)
        if extra is not None:
            ids = np.concatenate([ids, np.asarray(extra[0], dtype=np.int64)])
            vectors = np.concatenate([vectors, extra[1]])
        self.dense = self._new_dense(len(ids))
        if len(ids):
            self.dense.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def _bm25_index(self) -> Any:
        if self._bm25 is None:
            import bm25s  # optional heavy dependency: only retrieval artefacts need it

            self._bm25_ids = list(self.passages)
            self._bm25 = bm25s.BM25()
            if self._bm25_ids:
                self._bm25.index([words(self.passages[i]["text"]) for i in self._bm25_ids], show_progress=False)
        return self._bm25

    # ------------------------------------------------------------------ searching
    def _allowed(self, pid: int, filters: dict[str, Any] | None) -> bool:
        if not filters:
            return True
        p = self.passages.get(pid)
        if p is None:
            return False
        for key, want in filters.items():
            have = p["group"] if key == "group" else p["metadata"].get(key)
            if (have not in want) if isinstance(want, list) else (have != want):
                return False
        return True

    def dense_search(
        self, queries: np.ndarray, depth: int, filters: dict[str, Any] | None = None
    ) -> list[list[tuple[int, float]]]:
        if self.dense is None or not self.passages:
            return [[] for _ in range(len(queries))]
        fetch = min(len(self.passages), max(depth * 8, FILTERED_FETCH) if filters else depth)
        scores, ids = self.dense.search(np.ascontiguousarray(queries, dtype=np.float32), fetch)
        return [
            [
                (int(i), float(s))
                for i, s in zip(row_ids, row_scores, strict=True)
                if i >= 0 and self._allowed(int(i), filters)
            ][:depth]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def bm25_search(
        self, texts: list[str], depth: int, filters: dict[str, Any] | None = None
    ) -> list[list[tuple[int, float]]]:
        if not self.passages:
            return [[] for _ in texts]
        index = self._bm25_index()
        fetch = min(len(self._bm25_ids), max(depth * 8, FILTERED_FETCH) if filters else depth)
        docs, scores = index.retrieve([words(t) for t in texts], k=fetch, show_progress=False, n_threads=1)
        out = []
        for row_docs, row_scores in zip(docs, scores, strict=True):
            hits = [(self._bm25_ids[int(d)], float(s)) for d, s in zip(row_docs, row_scores, strict=True)]
            out.append([h for h in hits if self._allowed(h[0], filters)][:depth])
        return out

    def search(
        self,
        texts: list[str],
        embeddings: np.ndarray | None,
        k: int,
        ranking: str,
        rrf_k: int = 60,
        filters: dict[str, Any] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top ``k`` (id, score) per query: dense cosine, BM25 score, or RRF score for ``hybrid``."""
        if ranking == "bm25":
            return self.bm25_search(texts, k, filters)
        assert embeddings is not None
        if ranking == "dense":
            return self.dense_search(embeddings, k, filters)
        depth = max(4 * k, 50)  # fuse deeper lists than asked: a passage ranked 30th by one may win overall
        dense = self.dense_search(embeddings, depth, filters)
        sparse = self.bm25_search(texts, depth, filters)
        return [rrf([[i for i, _ in d], [i for i, _ in s]], rrf_k)[:k] for d, s in zip(dense, sparse, strict=True)]

    # ------------------------------------------------------------------ files
    def save(self, folder: Path) -> None:
        faiss = _faiss()

        folder = Path(folder) / INDEX_DIR
        folder.mkdir(parents=True, exist_ok=True)
        lines = (json.dumps({"id": pid, **p}, ensure_ascii=False) for pid, p in self.passages.items())
        atomic_write_text(folder / "passages.jsonl", "\n".join(lines) + "\n")
        data = faiss.serialize_index(self.dense) if self.dense is not None else np.zeros(0, dtype=np.uint8)
        atomic_write_bytes(folder / "dense.faiss", np.asarray(data).tobytes())
        atomic_write_text(folder / "index.json", json.dumps({"dim": self.dim, "config": self.config.model_dump()}))

    @classmethod
    def load(cls, folder: Path) -> PassageIndex:
        faiss = _faiss()

        folder = Path(folder) / INDEX_DIR
        try:
            info = json.loads((folder / "index.json").read_text(encoding="utf-8"))
            index = cls(dim=int(info["dim"]), config=IndexConfig(**info["config"]))
            for line in (folder / "passages.jsonl").read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    index.passages[int(row.pop("id"))] = row
            raw = np.frombuffer((folder / "dense.faiss").read_bytes(), dtype=np.uint8)
        except (OSError, ValueError, KeyError) as exc:
            raise ShipyardError(f"cannot read the passage index: {exc}", where=str(folder)) from None
        if raw.size:
            index.dense = faiss.deserialize_index(raw.copy())
        return index
