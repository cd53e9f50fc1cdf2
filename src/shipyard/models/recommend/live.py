"""A served recommender's live state: recommendations, real-time events, erasure.

``LiveRecommender`` holds one trained vector model (BPR, biased MF or two-tower), its FAISS item index, and each
user's history (training events plus events received since). It answers:

- ``recommend(user_id=..., k=...)``: the user's vector (the trained one until the user has new events; then the
  fold-in of the whole history, so an event changes the very next answer), FAISS candidates, exclude-seen and
  category filters, optional MMR; each item with a reason ("because you liked X": the liked history item most
  similar to it). An unknown user, or a user with no history, gets the popularity list, and the answer says so;
- ``recommend(recent=[...])``: an anonymous session, its vector folded in from the given items;
- ``record_event(user_id, item_id, rating)``: validated (an unknown item is a ShipyardError naming it), appended
  to the history; a duplicate of the latest event is recorded once (``duplicate: true``);
- ``forget(user_ids)``: the users' histories and served vectors go; they are unknown users from then on.

Thread-safe: one lock around histories and vectors (the searches themselves run outside it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.models.recommend.foldin import fold_in_explicit
from shipyard.models.recommend.index import ItemIndex

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
    ) -> None:
        self.model, self.kind = model, kind
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
            return self.model.fold_in(items, user_pos)
        if self.kind == "mf":
            ratings = np.array([e.rating for e in events[-self.history_limit :]], dtype=np.float64)
            q = self.index.vectors[:, :-1]
            p, _ = fold_in_explicit(
                q, self.index.vectors[:, -1], float(self.model.mu), items, ratings, reg=self.model.reg
            )
            return np.concatenate([p, [1.0]]).astype(np.float32)
        return self.model.fold_in(items, gram=self._gram)

    def user_vector(self, key: Any) -> np.ndarray | None:
        with self._lock:
            state = self.users.get(key)
            if state is None or not state.events:
                return None
            cached = self._vectors.get(key)
            if cached is not None:
                return cached
            events, pos, dirty = list(state.events), state.position, state.dirty
        if self.kind == "two_tower":
            vec = self.model.fold_in(np.array([e.item for e in events], dtype=np.int64), pos)
        elif pos >= 0 and not dirty:
            vec = self.model.user_vectors(np.array([pos]))[0]
        else:
            vec = self._fold(events, pos)
        with self._lock:
            if key in self.users:  # not forgotten meanwhile
                self._vectors[key] = vec
        return vec

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
        if k < 1:
            raise ShipyardError(f"k must be at least 1, got {k}", where="k")
        allowed = self._allowed(category)
        out: dict[str, Any] = {"k": k, "fallback": None}
        if recent is not None:
            events = [Event(self.item_position(r, where=f"recent[{n}]"), 1.0, 0) for n, r in enumerate(recent)]
            vec, history, out["user_id"] = (self._fold(events) if events else None), events, None
        else:
            key = self._key(user_id)
            out["user_id"] = user_id
            vec = self.user_vector(key)
            with self._lock:
                state = self.users.get(key)
                history = list(state.events) if state else []
        seen = {e.item for e in history} if exclude_seen else set()
        if vec is None:
            out["fallback"] = "popularity"
            out["reason_fallback"] = "unknown user" if recent is None and not history else "no history"
            items = self._popular(k, seen, allowed)
            scores = self.popularity[items]
        else:
            items, scores = self.index.recommend(vec, k, exclude=seen, allowed=allowed, mmr=mmr)
        out["items"] = [
            {**self.item_info(int(i)), "score": float(s), **self._reason(int(i), history)}
            for i, s in zip(items, scores, strict=True)
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
