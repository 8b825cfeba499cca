"""A Ray worker: a process that runs discipline units, each call one unit, as many at once as
builder/execute/admission.py lets, in one event loop sharing one engine, as a local build does. Its engine takes its
endpoint limits from leases on the cluster-wide ones, reads the work dir's shared cache immutable (never
writing it), writes each unit's own cache file and unit folder, and hands back the unit's unit.json and the
worker's running totals.

Ray restarts a worker whose process died and calls it again with the units it held; each resumes from its
cache, so only the requests that were in flight are sent twice.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict, dataclass

import ray

from ...llm.cache import Cache, shared_cache_path
from ...llm.engine import Engine
from ...llm.reach import check_reachable
from ...plan import Run
from ...taxonomy import DisciplineRef
from ...unit.store import UnitStore
from ..admission import Admission
from ..engine import new_engine
from .leases import Leases


@dataclass
class _Started:
    """What a worker holds once its first call fetched the build: the run, its units, and one engine."""

    plan: Run
    store: UnitStore
    depth: int
    engine: Engine
    admission: Admission


class UnitWorker:
    def __init__(self):
        self.name = f"{ray.util.get_node_ip_address()}:{os.getpid()}"
        self.started: _Started | None = None
        self.units_done = 0
        self.snapshots = 0  # orders this process's totals: replies may reach the driver out of order
        self._starting = asyncio.Lock()

    async def run(self, build: list, discipline: DisciplineRef) -> dict:
        """One unit, written to its folder; returns its unit.json and this worker's totals so far. `build` is
        [reference to (Run, UnitStore, depth), the LeaseBroker]: the first call fetches them (in a list, Ray
        does not fetch it for every call; not constructor arguments, which Ray warns a restart may lose)."""
        async with self._starting:
            if self.started is None:
                self.started = await _start(*build)
        started = self.started
        result = await started.admission.run(started.plan, discipline, started.depth, started.store.benchmarks)
        written = await started.store.put(discipline, result)  # as a local build runs a unit
        self.units_done += 1
        return {"unit": written.to_json(), "totals": self.totals()}

    async def close(self) -> None:
        """Closes the engine's HTTP sessions before the driver ends this process."""
        if self.started is not None:
            await self.started.engine.__aexit__(None, None, None)

    def totals(self) -> dict:
        """What this process did so far: units, usage per stage and model, Retry-After waits, why it stopped (a
        dead endpoint)."""
        self.snapshots += 1
        engine = self.started.engine if self.started else None
        usage = engine.accounting.by_stage_model.items() if engine else ()
        return {
            "worker": self.name,
            "snapshot": self.snapshots,
            "units_done": self.units_done,
            "usage": [[stage, model, asdict(figures)] for (stage, model), figures in usage],
            "retry_after_waits": engine.retry_after_waits if engine else [],
            "stop_reason": engine.stop_reason if engine else None,
        }


async def _start(shipped: ray.ObjectRef, broker) -> _Started:
    """In the actor's event loop, where the engine's HTTP sessions and the leases' keeper live. A `localhost`
    endpoint is this node's own server: whether it answers is checked here, on the node."""
    run, store, depth = await shipped
    context = ray.get_runtime_context()
    await check_reachable({endpoint for plan in run.stages.values() for endpoint in plan.route.endpoints})
    actor_id = context.get_actor_id()
    if actor_id is None:
        raise RuntimeError("a UnitWorker runs as a Ray actor, which has an id")
    leases = Leases(broker, actor_id, context.get_node_id())
    shared = Cache(shared_cache_path(run.work_dir), read_only=True)
    engine = new_engine(run, shared, endpoint_limits=leases.limits_for)
    return _Started(run, store, depth, engine, Admission(engine))
