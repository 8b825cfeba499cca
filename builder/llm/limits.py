"""Client-side limits for one endpoint: adaptive concurrency (AIMD), request and token rates, backoff."""

from __future__ import annotations

import asyncio
import random
import time


class AdaptiveConcurrency:
    """At most `limit` requests in flight; the limit halves on overload and grows back by ~1 per round trip.

    Additive increase / multiplicative decrease, as TCP does: a burst of 429s from requests that were
    already in flight cuts the limit once per `cooldown_s`, not once per response.
    """

    def __init__(self, maximum: int, cooldown_s: float = 1.0):
        self.maximum = maximum
        self.limit = float(maximum)
        self.lowest = maximum
        self.in_flight = 0
        self.cooldown_s = cooldown_s
        self._last_cut = -cooldown_s
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1

    async def release(self, overloaded: bool) -> None:
        async with self._changed:
            self.in_flight -= 1
            now = time.monotonic()
            if overloaded and now - self._last_cut >= self.cooldown_s:
                self.limit = max(1.0, self.limit / 2)
                self.lowest = min(self.lowest, int(self.limit))
                self._last_cut = now
            elif not overloaded:
                self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
            self._changed.notify_all()


class RateLimiter:
    """A token bucket of `per_minute` units (requests or tokens), holding at most 10 s worth of burst."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60
        self.capacity = max(self.rate * 10, 1.0)
        self.available = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                now = time.monotonic()
                self.available = min(self.capacity, self.available + (now - self._updated) * self.rate)
                self._updated = now
                if self.available >= amount:
                    self.available -= amount
                    return
                await asyncio.sleep((amount - self.available) / self.rate)


def backoff_s(retry: int, base_s: float = 0.5, cap_s: float = 60.0) -> float:
    """Exponential backoff with full jitter (retry counts from 0)."""
    return random.uniform(0, min(cap_s, base_s * 2**retry))
