"""A Ray worker: a process that runs discipline units, each call one unit, as many at once as
builder/admission.py lets, in one event loop sharing one engine, as a local build does. Its engine takes its
endpoint limits from leases on the cluster-wide ones, reads the work dir's shared cache immutable (never
writing it), writes each unit's own cache file and unit folder, and hands back the unit's unit.json and the
worker's running totals.

Ray restarts a worker whose process died and calls it again with the units it held; each resumes from its
cache, so only the requests that were in flight are sent twice.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict

import ray

from .. import preflight
from ..admission import Admission
from ..llm.accounting import Accounting
from ..llm.cache import Cache, shared_cache_path
from ..llm.engine import Engine
from ..taxonomy import DisciplineRef
from ..unit import UnitStore, run_unit
from .leases import Leases


class UnitWorker:
    def __init__(self):
        self.name = f"{ray.util.get_node_ip_address()}:{os.getpid()}"
        self.store: UnitStore | None = None
        self.depth = 0
        self.engine: Engine | None = None
        self.admission: Admission | None = None
        self.units_done = 0
        self.snapshots = 0  # orders this process's totals: replies may reach the driver out of order
        self._starting = asyncio.Lock()

    async def run(self, build: list, discipline: DisciplineRef) -> dict:
        """One unit, written to its folder; returns its unit.json and this worker's totals so far. `build` is
        [reference to (UnitStore, depth), the LeaseBroker]: the first call fetches the store (in a list, Ray
        does not fetch it for every call; not constructor arguments, which Ray warns a restart may lose)."""
        async with self._starting:
            if self.engine is None:
                await self._start(*build)
        store = self.store
        async with self.admission.unit() as wait_for_room:  # as in a local build
            result = await run_unit(store.run, self.engine, discipline, self.depth, store.benchmarks, wait_for_room)
        written = await asyncio.to_thread(store.write, discipline, result)  # off the loop the other units use
        self.units_done += 1
        return {"unit": written.to_json(), "totals": self.totals()}

    async def close(self) -> None:
        """Closes the engine's HTTP sessions before the driver ends this process."""
        if self.engine is not None:
            await self.engine.__aexit__(None, None, None)

    def totals(self) -> dict:
        """What this process did so far: units, usage per stage and model, Retry-After waits, why it stopped (a
        dead endpoint)."""
        self.snapshots += 1
        usage = self.engine.accounting.by_stage_model.items() if self.engine else ()
        return {"worker": self.name, "snapshot": self.snapshots, "units_done": self.units_done,
                "usage": [[stage, model, asdict(figures)] for (stage, model), figures in usage],
                "retry_after_waits": self.engine.retry_after_waits if self.engine else [],
                "stop_reason": self.engine.stop_reason if self.engine else None}

    async def _start(self, shipped: ray.ObjectRef, broker) -> None:
        """In the actor's event loop, where the engine's HTTP sessions and the leases' keeper live. A `localhost`
        endpoint is this node's own server: whether it answers is checked here, on the node."""
        self.store, self.depth = await shipped
        run, context = self.store.run, ray.get_runtime_context()
        await preflight.check_reachable({endpoint for plan in run.stages.values() for endpoint in plan.route.endpoints})
        leases = Leases(broker, context.get_actor_id(), context.get_node_id())
        shared = Cache(shared_cache_path(run.work_dir), read_only=True)
        self.engine = Engine(shared, run.limits, Accounting(run.prices), endpoint_limits=leases.limits_for)
        self.admission = Admission(self.engine)
