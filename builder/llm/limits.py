"""Client-side limits for one endpoint: adaptive concurrency (AIMD), request and token rates, backoff."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import random
import time


class AdaptiveConcurrency:
    """At most `limit` requests in flight; the limit halves on overload and grows back by ~1 per round trip.

    Additive increase / multiplicative decrease, as TCP does: a burst of 429s from requests that were
    already in flight cuts the limit once per `cooldown_s`, not once per response. Waiters are served
    first come, first served, and a release wakes only the waiters that now fit: with thousands of
    requests queued by many units, waking them all on every release would cost more than the requests.
    """

    def __init__(self, maximum: int, cooldown_s: float = 1.0):
        self.maximum = maximum
        self.limit = float(maximum)
        self.lowest = maximum
        self.in_flight = 0
        self.cooldown_s = cooldown_s
        self._last_cut = -cooldown_s
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releaser counted us in before waking us
        except asyncio.CancelledError:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):  # a release may have dropped it already
                    self._waiters.remove(waiter)
            else:
                self.release_slot()  # woken and cancelled at once: hand the slot on
            raise

    def release(self, overloaded: bool) -> None:
        self.adapt(overloaded)
        self.release_slot()

    def adapt(self, overloaded: bool) -> None:
        """One request's outcome: an overload halves the limit (once per cooldown), a success grows it."""
        now = time.monotonic()
        if overloaded and now - self._last_cut >= self.cooldown_s:
            self.limit = max(1.0, self.limit / 2)
            self.lowest = min(self.lowest, int(self.limit))
            self._last_cut = now
        elif not overloaded:
            self.limit = min(float(self.maximum), self.limit + 1 / self.limit)

    def resize(self, maximum: int) -> None:
        """A new maximum, taken at once (a Ray worker's lease on its share of the endpoint)."""
        self.maximum, self.limit = maximum, float(maximum)
        self._wake()

    def release_slot(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


class RateLimiter:
    """A token bucket of `per_minute` units (requests or tokens), holding at most 10 s worth of burst."""

    recheck_s = math.inf  # a fixed rate: a waiter sleeps exactly until its tokens are there

    def __init__(self, per_minute: float):
        self.set_rate(per_minute)
        self.available = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def set_rate(self, per_minute: float) -> None:
        """A new rate (a Ray worker's share of the endpoint's rate), taken by waiters within recheck_s."""
        self.rate = per_minute / 60
        self.capacity = max(self.rate * 10, 1.0)

    async def take(self, amount: float) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.available = min(self.capacity, self.available + (now - self._updated) * self.rate)
                self._updated = now
                needed = min(amount, self.capacity)  # the capacity follows the rate, which may change
                if self.available >= needed:
                    self.available -= needed
                    return
                await asyncio.sleep(
                    min((needed - self.available) / self.rate, self.recheck_s) if self.rate else self.recheck_s
                )


def backoff_s(retry: int, base_s: float = 0.5, cap_s: float = 60.0) -> float:
    """Exponential backoff with full jitter (retry counts from 0)."""
    return random.uniform(0, min(cap_s, base_s * 2**retry))
