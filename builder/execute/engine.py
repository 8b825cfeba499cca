"""The engine of a run, wired one way wherever a run sends requests (a build, a Ray worker, an estimate, a
taxonomy proposal): the work dir's shared cache, the run's limits, and an accounting of its prices and budget."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..llm.accounting import Accounting
from ..llm.cache import Cache, shared_cache_path
from ..llm.engine import Engine, local_limits
from ..plan import Run


def new_engine(run: Run, cache: Cache, *, offline: bool = False, endpoint_limits=local_limits) -> Engine:
    """`cache`: the work dir's shared cache (a Ray worker opens it read-only). `offline` (an estimate) sends nothing;
    `endpoint_limits` makes each endpoint's limiters (on Ray: the worker's leases)."""
    return Engine(
        cache, run.limits, Accounting(run.prices, run.budget), offline=offline, endpoint_limits=endpoint_limits
    )


@contextlib.contextmanager
def engine_for(run: Run, *, offline: bool = False) -> Iterator[Engine]:
    """The run's engine on its work dir's shared cache, which is closed when the block ends. Offline (an estimate),
    the cache is read only: nothing is written under the work dir."""
    cache = Cache(shared_cache_path(run.work_dir), read_only=offline)
    try:
        yield new_engine(run, cache, offline=offline)
    finally:
        cache.close()
