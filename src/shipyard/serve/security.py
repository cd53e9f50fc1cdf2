"""API-key checks and per-key rate limits for the REST service.

Keys are verified against :class:`shipyard.store.keys.KeyStore` (an scrypt hash per key, a few ms, plus a
SQLite write of ``last_used_at``). Paying that on every request would dominate a fast model's latency, so a
verified key is cached in memory, under the SHA-256 of its plaintext (never the plaintext), for ``ttl_s``
seconds: a revoked key stops working within that time. A failed check is remembered for ``negative_ttl_s``
(2 s), so a flood of one bad key costs one scrypt hash per 2 s; concurrent checks of one key share one hash.

Failed authentications are limited per client address (:class:`AuthFailureLimiter`): an address that sent
``burst`` bad keys may send one more a ``1/rate`` seconds; beyond that its requests get 429 *before* any key
lookup or hash, unless their key is already in the cache of verified keys (so a legitimate client behind the
same address keeps working). Together with the store refusing unknown prefixes without hashing, a flood of
wrong keys costs the server a dictionary lookup per request, not an scrypt.

Rate limiting is a token bucket per key name: ``rate`` tokens a second, at most ``burst`` saved up. A refused
request learns after how many seconds a token will be there (``Retry-After``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import anyio

log = logging.getLogger(__name__)

SCOPE_RANK = {"predict": 1, "admin": 2}  # admin keys may do everything a predict key may


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and scope (never the key)."""

    name: str
    scope: str

    def allows(self, needed: str) -> bool:
        return SCOPE_RANK.get(self.scope, 0) >= SCOPE_RANK.get(needed, 99)


ANONYMOUS = Principal(name="anonymous", scope="admin")  # with --no-auth


class KeyAuthenticator:
    """Verifies bearer keys against a KeyStore, with a short in-memory cache of good keys."""

    def __init__(
        self, key_store: Any, ttl_s: float = 30.0, max_entries: int = 10_000, negative_ttl_s: float = 2.0
    ) -> None:
        self.key_store = key_store
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._pending: dict[str, asyncio.Future[Principal | None]] = {}

    def cached(self, token: str) -> Principal | None:
        """The principal of a key verified recently (no hashing beyond one SHA-256), else None."""
        hit = self._cache.get(_digest(token))
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    async def verify(self, token: str) -> Principal | None:
        digest = _digest(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        pending = self._pending.get(digest)
        if pending is not None:  # the same key is being checked right now: share that check
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            record = await anyio.to_thread.run_sync(self.key_store.verify, token)
            principal = Principal(name=record.name, scope=record.scope) if record is not None else None
            future.set_result(principal)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        finally:
            self._pending.pop(digest, None)
        self._remember(digest, principal, now)
        return principal

    def _remember(self, digest: str, principal: Principal | None, now: float) -> None:
        if len(self._cache) >= self.max_entries:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
        ttl = self.ttl_s if principal is not None else self.negative_ttl_s
        if ttl > 0:
            self._cache[digest] = (principal, now + ttl)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class AuthFailureLimiter:
    """Token buckets of failed authentications, keyed by client address."""

    def __init__(self, rate_per_s: float = 1.0, burst: int = 20, max_entries: int = 100_000) -> None:
        self.rate = float(rate_per_s)
        self.burst = max(1.0, float(burst))
        self.max_entries = max_entries
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, last refill time)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _tokens(self, address: str, now: float) -> float:
        tokens, last = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def blocked_for(self, address: str) -> float:
        """0.0 when this address may try another unknown key, else the seconds until it may."""
        if not self.enabled:
            return 0.0
        tokens = self._tokens(address, time.monotonic())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def record_failure(self, address: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if len(self._buckets) >= self.max_entries:  # forget the addresses whose bucket has refilled
            self._buckets = {a: v for a, v in self._buckets.items() if self._tokens(a, now) < self.burst}
            if len(self._buckets) >= self.max_entries:
                self._buckets.clear()
        self._buckets[address] = (max(0.0, self._tokens(address, now) - 1.0), now)


class RateLimiter:
    """Token buckets keyed by caller name."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = float(rate_per_s)
        self.burst = max(1.0, float(burst))
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill time)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, name: str, cost: float = 1.0) -> float:
        """0.0 when allowed (a token is taken), else the seconds until one will be there."""
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(name, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._buckets[name] = (tokens - cost, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (cost - tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
