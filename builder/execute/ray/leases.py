"""Endpoint limits that hold across a Ray cluster, whatever the number of workers.

One `LeaseBroker` actor per build keeps, for each endpoint, the cluster-wide concurrency (AIMD on 429s, as one
process's AdaptiveConcurrency does) and leases each worker a number of slots: its max-min fair share of what
the workers want, and the same share of the endpoint's requests and tokens per minute. A worker syncs with the
broker every TICK_S, one call for all its endpoints; a request itself never leaves the worker's event loop:
it takes a slot of the worker's own AdaptiveConcurrency, whose limit is the lease. So two workers cost the
broker 40 small calls a second, not two calls per request.

Why the concurrency is never exceeded: a worker applies each lease before it syncs again, and reports the
lease it applies and its requests in flight; the broker counts the worker as holding the largest of those and
of the lease it grants, and grants only what the other workers leave free. A worker whose process died is
replaced by Ray under the same actor id, whose first sync reports nothing held; a worker that stopped syncing
altogether keeps its slots until LEASE_EXPIRY_S, and a live worker whose lease is older than LEASE_VALID_S
(its loop was blocked) sends nothing until it syncs again, so both never hold the same slots.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from dataclasses import dataclass
from urllib.parse import urlparse

import ray

from ...config.settings import Limits
from ...llm.limits import AdaptiveConcurrency, RateLimiter
from ...llm.routes import Endpoint

TICK_S = 0.05
LEASE_VALID_S = 20.0
LEASE_EXPIRY_S = 60.0
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def endpoint_key(base_url: str, node_id: str) -> str:
    """An endpoint as the cluster counts it: `localhost` names each node's own server, with limits of its own."""
    return f"{base_url} on node {node_id[:12]}" if urlparse(base_url).hostname in _LOOPBACK else base_url


def fair_shares(capacity: int, wanted: dict[str, int]) -> dict[str, int]:
    """Max-min fair: whoever wants less than an equal share gets what it wants; the rest split what is left."""
    shares, left = {}, capacity
    waiting = sorted(wanted, key=lambda worker: (wanted[worker], worker))
    while waiting:
        equal, extra = divmod(left, len(waiting))
        if wanted[waiting[0]] <= equal:
            worker = waiting.pop(0)
            shares[worker] = wanted[worker]
            left -= wanted[worker]
            continue
        for index, worker in enumerate(waiting):
            shares[worker] = equal + (index < extra)
        break
    return shares


@dataclass
class _Holder:
    held: int  # slots the worker may be using until it syncs again
    wanted: int
    seen: float


class EndpointLimits:
    """One endpoint's limits across the cluster: the broker's side of each worker's lease."""

    def __init__(self, concurrency: int):
        self.concurrency = AdaptiveConcurrency(concurrency)  # only its AIMD arithmetic: slots live in the workers
        self.holders: dict[str, _Holder] = {}

    def sync(
        self,
        worker: str,
        applied: int,
        in_flight: int,
        wanted: int,
        overloads: int,
        successes: int,
        now: float,
        growing: bool,
    ) -> tuple[int, float]:
        """(slots leased to `worker`, its share of the requests and tokens per minute)."""
        for name in [name for name, holder in self.holders.items() if now - holder.seen > LEASE_EXPIRY_S]:
            del self.holders[name]
        if overloads:
            self.concurrency.adapt(True)
        for _ in range(successes):
            self.concurrency.adapt(False)
        capacity = int(self.concurrency.limit)
        others = {name: holder for name, holder in self.holders.items() if name != worker}
        shares = fair_shares(
            capacity, {**{name: holder.wanted for name, holder in others.items()}, worker: min(wanted, capacity)}
        )
        free = capacity - sum(holder.held for holder in others.values())
        lease = max(0, min(shares[worker], free if growing else applied))
        self.holders[worker] = _Holder(max(applied, in_flight, lease), wanted, now)
        total = sum(shares.values())
        return lease, (shares[worker] / total if total else 0.0)


class LeaseBroker:
    """The cluster-wide limits of every endpoint of one build (a Ray actor; methods run one at a time)."""

    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.endpoints: dict[str, EndpointLimits] = {}
        # Restarted by Ray, the broker does not know what the workers hold until each has synced or let its lease
        # run out: until then no lease grows.
        with warnings.catch_warnings():  # Ray 2.x warns about its own use of a deprecated property here
            warnings.simplefilter("ignore")
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self.growing_from = time.monotonic() + (LEASE_VALID_S if restarted else 0.0)

    def sync(self, worker: str, reports: dict[str, tuple[int, int, int, int, int]]) -> dict[str, tuple[int, float]]:
        """`reports`: endpoint key -> (lease applied, requests in flight, requests wanted, 429s and successes since
        the last sync). Returns endpoint key -> (slots leased, share of the per-minute rates)."""
        now = time.monotonic()
        return {
            key: self.endpoints.setdefault(key, EndpointLimits(self.concurrency)).sync(
                worker, *report, now, now >= self.growing_from
            )
            for key, report in reports.items()
        }

    def lowest_concurrency(self) -> dict[str, int]:
        return {key: endpoint.concurrency.lowest for key, endpoint in self.endpoints.items()}


class LeasedConcurrency(AdaptiveConcurrency):
    """A worker's slots on one endpoint: at most its lease in flight. A 429 cuts the lease at once here (the
    broker cuts the cluster's limit when it hears of it); growth comes only from the broker."""

    def __init__(self):
        super().__init__(0)
        self.valid_until = 0.0
        self.overloads = self.successes = 0

    async def acquire(self) -> None:
        self._expire()
        await super().acquire()

    def release_slot(self) -> None:
        self._expire()
        super().release_slot()

    def adapt(self, overloaded: bool) -> None:
        if overloaded:
            self.overloads += 1
            super().adapt(True)
            self.limit = min(self.limit, float(self.maximum))
        else:
            self.successes += 1

    def lease(self, slots: int, valid_until: float) -> None:
        self.valid_until = valid_until
        self.resize(slots)

    def _expire(self) -> None:
        if time.monotonic() > self.valid_until:
            self.limit = 0.0


class LeasedRate(RateLimiter):
    """A worker's share of an endpoint's requests or tokens per minute; counts the requests waiting for it, which
    are demand the broker must hear of."""

    recheck_s = 0.1  # the broker changes the rate: a waiter looks at it again this often (seconds)

    def __init__(self, per_minute: float):
        super().__init__(0)
        self.per_minute = per_minute
        self.available = 0.0
        self.waiting = 0

    async def take(self, amount: float) -> None:
        self.waiting += 1
        try:
            await super().take(amount)
        finally:
            self.waiting -= 1


class Leases:
    """One worker's leases on the endpoints it sends to, renewed by one sync with the broker every TICK_S.
    `limits_for` is the worker engine's `endpoint_limits`."""

    def __init__(self, broker, worker: str, node_id: str):
        self.broker, self.worker, self.node_id = broker, worker, node_id
        self.endpoints: dict[str, tuple[LeasedConcurrency, LeasedRate | None, LeasedRate | None]] = {}
        self._keeper: asyncio.Task | None = None

    def limits_for(self, endpoint: Endpoint, limits: Limits):
        key = endpoint_key(endpoint.base_url, self.node_id)
        if key not in self.endpoints:  # stages may reach one URL with other settings: it is still one server
            rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
            self.endpoints[key] = (
                LeasedConcurrency(),
                LeasedRate(rpm) if rpm else None,
                LeasedRate(tpm) if tpm else None,
            )
        if self._keeper is None:
            self._keeper = asyncio.ensure_future(self._keep())
        return self.endpoints[key]

    async def _keep(self) -> None:
        while True:
            sent = time.monotonic()
            reports = {key: self._report(*leased) for key, leased in self.endpoints.items()}
            try:
                answers = await self.broker.sync.remote(self.worker, reports)
            except Exception:  # the broker is being restarted by Ray: leases run out, sends wait, then resume
                answers = {}
            for key, (slots, share) in answers.items():
                concurrency, requests, tokens = self.endpoints[key]
                concurrency.lease(slots, sent + LEASE_VALID_S)
                for rate in (requests, tokens):
                    if rate is not None:
                        rate.set_rate(rate.per_minute * share)
            await asyncio.sleep(TICK_S)

    @staticmethod
    def _report(concurrency: LeasedConcurrency, requests: LeasedRate | None, tokens: LeasedRate | None):
        waiting = concurrency.waiting + max(
            (rate.waiting for rate in (requests, tokens) if rate is not None), default=0
        )
        report = (
            concurrency.maximum,
            concurrency.in_flight,
            concurrency.in_flight + waiting,
            concurrency.overloads,
            concurrency.successes,
        )
        concurrency.overloads = concurrency.successes = 0
        return report
