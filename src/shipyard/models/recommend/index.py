"""The candidate step: a FAISS inner-product index over item vectors, with filters and MMR re-ranking.

``ItemIndex.recommend(user_vector, k, exclude=..., allowed=..., mmr=...)`` searches the index for more candidates
than asked (the excluded and filtered-out items are removed after the search, and the pool grows until ``k`` are
left or the catalogue is exhausted), then optionally re-ranks the pool by maximal marginal relevance (Carbonell &
Goldstein 1998): each pick maximises ``lambda * relevance - (1 - lambda) * max cosine to the items already
picked``, which spreads exposure over less similar items. The index is exact (``IndexFlatIP``): catalogues of
tens of thousands of items search in well under a millisecond; ``save``/``load`` use FAISS's own file format.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shipyard.errors import ShipyardError


def _faiss():
    # optional heavy dependency (a C++ library): imported where used
    try:
        import faiss
    except ImportError:
        raise ShipyardError(
            "the recommender's candidate index needs faiss", where="faiss-cpu", hint="pip install faiss-cpu"
        ) from None
    return faiss


@dataclass
class Ask:
    """One query's wishes: ``k`` items, none of ``exclude``, only ``allowed`` ones (a boolean mask), MMR."""

    k: int
    exclude: Collection[int] = ()
    allowed: np.ndarray | None = None
    mmr: float | None = None
    pool: int | None = None
    excluded: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self.excluded = {int(i) for i in self.exclude}

    @property
    def want(self) -> int:  # MMR re-ranks a pool larger than k
        return max(self.k, self.pool or (4 * self.k if self.mmr is not None else self.k))

    def keep(self, ids: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
        kept = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0 and int(i) not in self.excluded]
        return kept if self.allowed is None else [(i, s) for i, s in kept if self.allowed[i]]


class ItemIndex:
    def __init__(self, vectors: np.ndarray, *, index: object | None = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit = self.vectors / np.maximum(norms, 1e-12)  # cosine for MMR
        if index is None:
            index = _faiss().IndexFlatIP(self.vectors.shape[1])
            index.add(self.vectors)
        self.index = index

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        scores, ids = self.index.search(q, min(k, self.n_items))
        return scores, ids

    def recommend(
        self,
        user_vector: np.ndarray,
        k: int,
        *,
        exclude: Collection[int] = (),
        allowed: np.ndarray | None = None,
        mmr: float | None = None,
        pool: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(items, scores) best first; ``allowed`` is a boolean mask over items (the category filter)."""
        return self.recommend_many(np.atleast_2d(user_vector), [Ask(k, exclude, allowed, mmr, pool)])[0]

    def recommend_many(self, vectors: np.ndarray, asks: Sequence[Ask]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One answer per row of ``vectors``, from one FAISS search over them all (FAISS spreads the queries over
        its threads and uses one matrix product for many); a query whose filters leave fewer than it needs among
        the shared candidates searches again alone with a growing pool."""
        if len(asks) == 0:
            return []
        sizes = [min(self.n_items, a.want + len(a.excluded) + 16) for a in asks]
        scores, ids = self.search(vectors, max(sizes))
        out = []
        for row, (ask, size) in enumerate(zip(asks, sizes, strict=True)):
            keep = ask.keep(ids[row, :size], scores[row, :size])
            while len(keep) < ask.want and size < self.n_items:  # the filters left too few: a bigger pool
                size = min(self.n_items, size * 4)
                s, i = self.search(vectors[row], size)
                keep = ask.keep(i[0], s[0])
            out.append(self._finish(ask, keep))
        return out

    def _finish(self, ask: Ask, keep: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
        items = np.array([i for i, _ in keep[: ask.want]], dtype=np.int64)
        rel = np.array([s for _, s in keep[: ask.want]], dtype=np.float32)
        if ask.mmr is not None and len(items) > 1:
            order = mmr_rerank(rel, self.unit[items], ask.k, lam=ask.mmr)
            return items[order], rel[order]
        return items[: ask.k], rel[: ask.k]

    def to_bytes(self) -> bytes:
        """The index in FAISS's own format, for an atomic write (`shipyard.io.atomic_write_bytes`)."""
        return _faiss().serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, vectors: np.ndarray, *, where: str = "items.faiss") -> ItemIndex:
        try:
            index = _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise ShipyardError(f"not a FAISS index: {str(exc).splitlines()[0]}", where=where) from None
        return cls._checked(index, vectors, where)

    @classmethod
    def _checked(cls, index: object, vectors: np.ndarray, where: str) -> ItemIndex:
        if index.ntotal != len(vectors) or index.d != vectors.shape[1]:  # type: ignore[attr-defined]
            raise ShipyardError(
                f"the index holds {index.ntotal} vectors of size {index.d}, the model {vectors.shape}",  # type: ignore[attr-defined]
                where=where,
                hint="the index and the model come from different runs",
            )
        return cls(vectors, index=index)

    def save(self, path: str | Path) -> None:
        """Write the index with FAISS's own format (no pickle); the caller writes it to a temp name and renames."""
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, vectors: np.ndarray) -> ItemIndex:
        return cls._checked(_faiss().read_index(str(path)), vectors, str(path))


def mmr_rerank(relevance: np.ndarray, unit_vectors: np.ndarray, k: int, *, lam: float) -> np.ndarray:
    """Positions (into ``relevance``) of ``k`` picks by maximal marginal relevance; lam=1 keeps the order."""
    if not 0.0 <= lam <= 1.0:
        raise ShipyardError(f"mmr lambda {lam} is not in [0, 1]", where="mmr")
    rel = np.asarray(relevance, dtype=np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.zeros_like(rel)  # relevance and cosine on one scale
    sims = unit_vectors @ unit_vectors.T
    chosen: list[int] = []
    max_sim = np.full(len(rel), -np.inf)
    left = np.ones(len(rel), dtype=bool)
    for _ in range(min(k, len(rel))):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = np.where(left, lam * rel - (1 - lam) * penalty, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        left[pick] = False
        max_sim = np.maximum(max_sim, sims[pick])
    return np.array(chosen, dtype=np.int64)
