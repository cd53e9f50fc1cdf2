"""A served recommender's live state: recommendations, real-time events, erasure.

``LiveRecommender`` holds one trained vector model (BPR, biased MF or two-tower), its FAISS item index, and each
user's history (training events plus events received since). It answers:

- ``recommend(user_id=..., k=...)``: the user's vector (the trained one until the user has new events; then the
  fold-in of the whole history, so an event changes the very next answer), FAISS candidates, exclude-seen and
  category filters, optional MMR; each item with a reason ("because you liked X": the liked history item most
  similar to it). An unknown user, or a user with no history, gets the popularity list, and the answer says so;
- ``recommend(recent=[...])``: an anonymous session, its vector folded in from the given items;
- ``recommend_many([...])``: several requests at once (the server's micro-batches): one trained-vector lookup
  and one user-tower call for the vectors the batch needs, one FAISS search over them, then each request's own
  filters, MMR and fallback; a bad request gets its error in its place;
- ``record_event(user_id, item_id, rating)``: validated (an unknown item is a ShipyardError naming it), appended
  to the history; a duplicate of the latest event is recorded once (``duplicate: true``);
- ``forget(user_ids)``: the users' histories and served vectors go; they are unknown users from then on.

Thread-safe: one lock around histories and vectors (the searches themselves run outside it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.models.recommend.foldin import fold_in_explicit
from shipyard.models.recommend.index import Ask, ItemIndex
from shipyard.models.recommend.towers import TorchUserTower
from shipyard.models.recommend.two_tower import PAD

LIKED = 4.0  # ratings at or above this are "liked" (reasons); implicit events have rating 1 and count as liked


@dataclass
class Event:
    item: int  # item position
    rating: float
    timestamp: int


@dataclass
class UserState:
    events: list[Event] = field(default_factory=list)
    position: int = -1  # the user's row in the trained model (-1: a user the model never saw)
    dirty: bool = False  # new events since training: the served vector is a fold-in
    version: int = 0  # bumped by every event: a vector computed from an older snapshot is not cached


@dataclass
class _Plan:
    """One recommendation request on its way through a batch."""

    user_id: Any
    recent: Sequence[Any] | None
    k: int
    exclude_seen: bool
    mmr: float | None
    allowed: np.ndarray | None = None
    key: Any = None
    history: list[Event] = field(default_factory=list)
    vector: np.ndarray | None = None
    items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class LiveRecommender:
    def __init__(
        self,
        model: Any,
        kind: str,
        *,
        user_ids: Sequence[Any],
        item_ids: Sequence[Any],
        histories: dict[Any, list[Event]],
        item_meta: dict[str, list[Any]] | None = None,
        index: ItemIndex | None = None,
        popularity: np.ndarray | None = None,
        history_limit: int = 10_000,
        user_tower: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.model, self.kind = model, kind
        # two-tower: (hist, uidx) -> user vectors; torch by default, the exported ONNX graph when load_recommender
        # finds one (models/recommend/towers.py)
        self.user_tower = user_tower or (TorchUserTower(model) if kind == "two_tower" else None)
        self.item_ids = list(item_ids)
        self.item_pos = {self._key(v): i for i, v in enumerate(self.item_ids)}
        self.item_meta = item_meta or {}
        self.index = index or ItemIndex(model.item_vectors())
        self.unit = self.index.unit
        self.history_limit = history_limit  # a user with more events keeps the latest ones for serving
        self.users: dict[Any, UserState] = {}
        for pos, uid in enumerate(user_ids):
            self.users[self._key(uid)] = UserState(list(histories.get(uid, [])), position=pos)
        self.popularity = popularity if popularity is not None else self._popularity()
        self._vectors: dict[Any, np.ndarray] = {}
        self._lock = threading.Lock()
        self._categories = self._category_masks()
        if kind == "bpr":  # the implicit fold-in's Q^T Q, computed once
            q = model.item_vectors()[:, :-1].astype(np.float64)
            self._gram = q.T @ q

    @staticmethod
    def _key(raw: Any) -> Any:
        """Ids arrive as strings from a URL and as numbers from JSON: one key for both."""
        text = str(raw).strip()
        return int(text) if text.lstrip("-").isdigit() else text

    def _popularity(self) -> np.ndarray:
        counts = np.zeros(len(self.item_ids), dtype=np.float64)
        for state in self.users.values():
            for ev in state.events:
                counts[ev.item] += 1
        return counts

    def _category_masks(self) -> dict[str, np.ndarray]:
        masks: dict[str, np.ndarray] = {}
        for i, cats in enumerate(self.item_meta.get("genres", [])):
            for c in cats or []:
                masks.setdefault(str(c).lower(), np.zeros(len(self.item_ids), bool))[i] = True
        return masks

    # ------------------------------------------------------------------ ids
    def item_position(self, raw: Any, *, where: str = "item_id") -> int:
        pos = self.item_pos.get(self._key(raw))
        if pos is None:
            raise ShipyardError(f"unknown item {raw!r}", where=where, hint="items must be in the model's catalogue")
        return pos

    def item_info(self, pos: int) -> dict[str, Any]:
        info: dict[str, Any] = {"item_id": self.item_ids[pos]}
        for key in ("title", "genres"):
            if key in self.item_meta:
                info[key] = self.item_meta[key][pos]
        return info

    # ------------------------------------------------------------------ vectors
    def _fold(self, events: Sequence[Event], user_pos: int = -1) -> np.ndarray:
        items = np.array([e.item for e in events[-self.history_limit :]], dtype=np.int64)
        if self.kind == "two_tower":
            return self._fold_many([(list(events), user_pos)])[0]
        if self.kind == "mf":
            ratings = np.array([e.rating for e in events[-self.history_limit :]], dtype=np.float64)
            q = self.index.vectors[:, :-1]
            p, _ = fold_in_explicit(
                q, self.index.vectors[:, -1], float(self.model.mu), items, ratings, reg=self.model.reg
            )
            return np.concatenate([p, [1.0]]).astype(np.float32)
        return self.model.fold_in(items, gram=self._gram)

    def _fold_many(self, jobs: Sequence[tuple[Sequence[Event], int]]) -> list[np.ndarray]:
        """Vectors of several users from (events, trained row or -1): one user-tower call for all of them for a
        two-tower model; a closed-form solve each for MF and BPR (their fold-ins are small linear systems)."""
        if not jobs:
            return []
        if self.kind != "two_tower":
            return [self._fold(events, pos) for events, pos in jobs]
        width = self.model.history
        hist = np.full((len(jobs), width), PAD, dtype=np.int64)
        for row, (events, _) in enumerate(jobs):
            recent = [e.item for e in events[-width:]]
            if recent:
                hist[row, -len(recent) :] = recent
        return list(self.user_tower(hist, np.array([pos for _, pos in jobs], dtype=np.int64)))

    def user_vector(self, key: Any) -> np.ndarray | None:
        return self._user_vectors([key])[key][0]

    def _user_vectors(self, keys: Sequence[Any]) -> dict[Any, tuple[np.ndarray | None, list[Event]]]:
        """Each user's (served vector or None when they have no history, history), read in one snapshot and
        computed together: trained rows in one lookup, fold-ins in one user-tower call. A vector is cached only
        if the user had no event (and was not forgotten) meanwhile, so an event is never hidden by a stale one."""
        snap: dict[Any, tuple[UserState, int, list[Event], np.ndarray | None] | None] = {}
        with self._lock:
            for key in keys:
                state = self.users.get(key)
                ok = state is not None and state.events
                snap[key] = (state, state.version, list(state.events), self._vectors.get(key)) if ok else None  # type: ignore[union-attr]
        todo = {k: s for k, s in snap.items() if s is not None and s[3] is None}
        fresh: dict[Any, np.ndarray] = {}
        lookup = [k for k, s in todo.items() if self.kind != "two_tower" and s[0].position >= 0 and not s[0].dirty]
        if lookup:
            rows = self.model.user_vectors(np.array([todo[k][0].position for k in lookup]))
            fresh.update(zip(lookup, rows, strict=True))
        fold = [k for k in todo if k not in fresh]
        fresh.update(zip(fold, self._fold_many([(todo[k][2], todo[k][0].position) for k in fold]), strict=True))
        with self._lock:
            for key, vec in fresh.items():
                state, version = todo[key][0], todo[key][1]
                if self.users.get(key) is state and state.version == version:
                    self._vectors[key] = vec
        return {k: (None, []) if s is None else (s[3] if s[3] is not None else fresh[k], s[2]) for k, s in snap.items()}

    # ------------------------------------------------------------------ answers
    def recommend(
        self,
        *,
        user_id: Any = None,
        recent: Sequence[Any] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        category: str | None = None,
        mmr: float | None = None,
    ) -> dict[str, Any]:
        query = {"user_id": user_id, "recent": recent, "k": k, "exclude_seen": exclude_seen, "category": category,
                 "mmr": mmr}  # fmt: skip
        out = self.recommend_many([query])[0]
        if isinstance(out, ShipyardError):
            raise out
        return out

    def recommend_many(self, queries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | ShipyardError]:
        """The answers to several requests (``recommend``'s keyword arguments each) computed together: one
        user-vector lookup / user-tower call and one FAISS search over the batch, each request's own filters, MMR
        and fallback applied to its own slice. A request that is wrong (unknown item or category, bad k) gets its
        ShipyardError in its place and does not affect the others."""
        plans: list[_Plan | ShipyardError] = []
        for query in queries:
            try:
                plans.append(self._plan(**query))
            except ShipyardError as exc:
                plans.append(exc)
        ok = [p for p in plans if isinstance(p, _Plan)]
        users = self._user_vectors([p.key for p in ok if p.recent is None])
        sessions = [p for p in ok if p.recent is not None and p.history]
        for p, vec in zip(sessions, self._fold_many([(p.history, -1) for p in sessions]), strict=True):
            p.vector = vec
        for p in ok:
            if p.recent is None:
                p.vector, p.history = users[p.key]
        found = [p for p in ok if p.vector is not None]
        asks = [Ask(p.k, {e.item for e in p.history} if p.exclude_seen else (), p.allowed, p.mmr) for p in found]
        if found:
            answers = self.index.recommend_many(np.stack([p.vector for p in found]), asks)  # type: ignore[misc]
            for p, (items, scores) in zip(found, answers, strict=True):
                p.items, p.scores = items, scores
        return [p if isinstance(p, ShipyardError) else self._answer(p) for p in plans]

    def _plan(
        self,
        *,
        user_id: Any = None,
        recent: Sequence[Any] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        category: str | None = None,
        mmr: float | None = None,
    ) -> _Plan:
        if k < 1:
            raise ShipyardError(f"k must be at least 1, got {k}", where="k")
        if mmr is not None and not 0.0 <= mmr <= 1.0:
            raise ShipyardError(f"mmr lambda {mmr} is not in [0, 1]", where="mmr")
        plan = _Plan(user_id=user_id, recent=recent, k=k, exclude_seen=exclude_seen, mmr=mmr)
        plan.allowed = self._allowed(category)
        if recent is not None:
            plan.history = [Event(self.item_position(r, where=f"recent[{n}]"), 1.0, 0) for n, r in enumerate(recent)]
        else:
            plan.key = self._key(user_id)
        return plan

    def _answer(self, p: _Plan) -> dict[str, Any]:
        out: dict[str, Any] = {"k": p.k, "fallback": None, "user_id": p.user_id if p.recent is None else None}
        if p.vector is None:
            seen = {e.item for e in p.history} if p.exclude_seen else set()
            out["fallback"] = "popularity"
            out["reason_fallback"] = "unknown user" if p.recent is None and not p.history else "no history"
            p.items = self._popular(p.k, seen, p.allowed)
            p.scores = self.popularity[p.items]
        out["items"] = [
            {**self.item_info(int(i)), "score": float(s), **self._reason(int(i), p.history)}
            for i, s in zip(p.items, p.scores, strict=True)
        ]
        return out

    def _allowed(self, category: str | None) -> np.ndarray | None:
        if category is None:
            return None
        mask = self._categories.get(category.lower())
        if mask is None:
            known = ", ".join(sorted(self._categories)) or "none (the model has no item categories)"
            raise ShipyardError(f"unknown category {category!r}; known: {known}", where="category")
        return mask

    def _popular(self, k: int, seen: set[int], allowed: np.ndarray | None) -> np.ndarray:
        order = np.argsort(-self.popularity, kind="stable")
        keep = [i for i in order if i not in seen and (allowed is None or allowed[i])]
        return np.array(keep[:k], dtype=np.int64)

    def _reason(self, item: int, history: Sequence[Event]) -> dict[str, Any]:
        liked = [e.item for e in history[-200:] if e.rating >= LIKED or e.rating == 1.0]
        if not liked:
            return {"reason": "popular with everyone" if not history else "similar to what you watched"}
        sims = self.unit[np.array(liked)] @ self.unit[item]
        best = liked[int(np.argmax(sims))]
        title = self.item_info(best).get("title", self.item_ids[best])
        return {"reason": f"because you liked {title}", "because": self.item_ids[best]}

    # ------------------------------------------------------------------ events and erasure
    def record_event(
        self, user_id: Any, item_id: Any, rating: float = 1.0, timestamp: int | None = None
    ) -> dict[str, Any]:
        pos = self.item_position(item_id)
        if not np.isfinite(rating):
            raise ShipyardError(f"rating {rating!r} is not a finite number", where="rating")
        key = self._key(user_id)
        event = Event(pos, float(rating), int(timestamp if timestamp is not None else time.time()))
        with self._lock:
            state = self.users.setdefault(key, UserState())
            last = state.events[-1] if state.events else None
            duplicate = last is not None and last.item == pos and last.rating == event.rating
            if not duplicate:
                state.events.append(event)
                if len(state.events) > self.history_limit:
                    del state.events[: len(state.events) - self.history_limit]
                state.dirty = True
                state.version += 1
                self._vectors.pop(key, None)
        return {"user_id": user_id, "item_id": self.item_ids[pos], "recorded": not duplicate, "duplicate": duplicate}

    def forget(self, user_ids: Iterable[Any]) -> int:
        """Drop the users' histories and served vectors; returns how many users were known."""
        n = 0
        with self._lock:
            for uid in user_ids:
                key = self._key(uid)
                n += self.users.pop(key, None) is not None
                self._vectors.pop(key, None)
            # the fallback list is counted again without them, so it no longer reflects their history either
            self.popularity = self._popularity()
        return n

    def user_ids(self, limit: int = 50) -> list[Any]:
        """Some known users (the first ``limit`` with a history), for a shop front's user picker."""
        with self._lock:
            return [k for k, state in self.users.items() if state.events][: max(0, limit)]

    def history(self, user_id: Any) -> list[dict[str, Any]]:
        with self._lock:
            state = self.users.get(self._key(user_id))
            events = list(state.events) if state else []
        return [{"item_id": self.item_ids[e.item], "rating": e.rating, "timestamp": e.timestamp} for e in events]
