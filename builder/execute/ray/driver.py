"""The driver's side of a Ray build: connect, start the broker and the workers, hand out one call per missing
discipline (a bounded number queued per worker, so a fast worker takes more), collect each written unit and the
workers' running totals, and stop everything it started.

A killed driver takes its workers with it (Ray ends a job's actors when its driver dies); running the same
command again finds the units that were written and resumes the others from their caches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from typing import Any

import ray

from ...llm import loop
from ...llm.accounting import Accounting, Usage
from ...llm.cache import Cache, shared_cache_path
from ...llm.engine import EndpointError
from ...plan import Run
from ...unit.store import UnitFiles, UnitStore
from ..admission import UNITS_AHEAD, UNITS_IN_FLIGHT
from ..base import EngineFigures, Executed
from ..progress import Progress, expected_items
from . import ClusterError
from .leases import LeaseBroker
from .worker import UnitWorker

# Calls handed to a worker ahead: its next unit is always at hand.
QUEUED_PER_WORKER = 2 * (UNITS_IN_FLIGHT + UNITS_AHEAD)
POLL_S = 2.0  # between two looks at the workers' totals while units run
CLOSE_S = 10.0  # longest wait for the workers to close their HTTP sessions at the end
CONNECT_S = 10.0  # to the cluster's head, before Ray's own long retries
EARLIER_WORKERS_S = 60.0  # longest wait for the workers of a killed driver of the same work dir to end


def run_units(run: Run, store: UnitStore, missing, depth: int, *, progress: bool) -> Executed:
    accounting = Accounting(run.prices)
    if not missing:
        return Executed([], accounting, EngineFigures({}, [], None))
    # The workers open the shared cache immutable: it must exist, with its write-ahead log folded in.
    Cache(shared_cache_path(run.work_dir)).close()
    started = _connect(run.settings.ray_address)
    # Workers are named after the work dir they write: those of a killed driver may live on for a moment.
    prefix = f"glan-worker-{hashlib.sha256(str(run.work_dir).encode()).hexdigest()[:12]}-"
    _wait_for_earlier_workers(prefix)
    # Actor handles: their methods are called by name through Ray (`.remote`), which a type checker cannot follow.
    broker: Any = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(LeaseBroker).remote(
        run.limits.concurrency
    )
    worker_class: Any = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(UnitWorker)
    workers: list[Any] = [
        worker_class.options(name=f"{prefix}{index}").remote()
        for index in range(max(1, int(ray.cluster_resources().get("CPU", 1))))
    ]
    try:
        # Put once for every worker: the resolved run and the benchmarks' n-grams.
        build = [ray.put((run, store, depth)), broker]
        totals = _Totals(accounting)
        written: list[UnitFiles] = []
        loop.run(
            _drive(
                store,
                build,
                workers,
                missing,
                written,
                totals,
                Progress(len(missing), accounting, progress, expected_items(run, len(missing), depth)),
            )
        )
        return Executed(
            written,
            accounting,
            EngineFigures(
                ray.get(broker.lowest_concurrency.remote()),
                [wait for latest in totals.latest.values() for wait in latest["retry_after_waits"]],
                next((latest["stop_reason"] for latest in totals.latest.values() if latest["stop_reason"]), None),
                {worker: latest["units_done"] for worker, latest in sorted(totals.latest.items())},
            ),
        )
    finally:
        ray.wait([worker.close.remote() for worker in workers], num_returns=len(workers), timeout=CLOSE_S)
        for actor in [*workers, broker]:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _connect(address: str | None) -> bool:
    """Joins the cluster at `address` unless this process already has (then it is the caller's to end);
    returns whether it joined."""
    if ray.is_initialized():
        return False
    if address and address != "auto" and "://" not in address:
        _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as error:
        flag = f"--ray {address}" if address else "--ray"
        raise ClusterError(
            f"{flag}: {str(error).rstrip('.')}. Start a cluster with `ray start --head`, or pass the "
            "address of one (HOST:PORT)."
        ) from None
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an address that does not answer for minutes; one connection says it at once."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_S).close()
    except (OSError, ValueError) as error:
        raise ClusterError(
            f"--ray {address}: cannot connect ({error}). Give the HOST:PORT of the cluster's head "
            "(`ray start --head --port PORT`), and check that it is running."
        ) from None


def _wait_for_earlier_workers(prefix: str) -> None:
    """Two workers never write one unit's files: a build of this work dir whose driver died leaves workers that
    Ray ends within a few seconds; wait for that."""
    deadline = time.monotonic() + EARLIER_WORKERS_S
    while [actor for actor in ray.util.list_named_actors(all_namespaces=True) if actor["name"].startswith(prefix)]:
        if time.monotonic() > deadline:
            raise ClusterError(
                f"--ray: workers named {prefix}* of an earlier build of this work dir are still "
                f"running on the cluster after {EARLIER_WORKERS_S:g} s. End that build's driver "
                "(Ray then ends its workers), then run the same command again."
            )
        time.sleep(0.2)


async def _drive(
    store: UnitStore, build: list, workers: list, missing, written: list[UnitFiles], totals: _Totals, progress: Progress
) -> None:
    pending = list(reversed(missing))
    calls: dict[asyncio.Future, int] = {}  # -> the index of the worker that runs it
    queued = [0] * len(workers)
    watchers = [asyncio.ensure_future(progress.ticking()), asyncio.ensure_future(_poll(workers, totals))]
    try:
        while pending or calls:
            while pending and min(queued) < QUEUED_PER_WORKER:
                index = queued.index(min(queued))
                calls[asyncio.wrap_future(workers[index].run.remote(build, pending.pop()).future())] = index
                queued[index] += 1
            done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
            for call in done:
                queued[calls.pop(call)] -= 1
                reply = _reply(call)
                written.append(
                    UnitFiles(
                        **reply["unit"],
                        directory=store.root / reply["unit"]["discipline_id"] / reply["unit"]["fingerprint"],
                    )
                )
                totals.take([reply["totals"]])
                progress.unit_done()
    finally:
        for watcher in watchers:
            watcher.cancel()
        progress.close()


async def _poll(workers: list, totals: _Totals) -> None:
    """The workers' totals every POLL_S, so that progress shows requests while units are still running."""
    while True:
        await asyncio.sleep(POLL_S)
        replies = await asyncio.gather(
            *[asyncio.wrap_future(worker.totals.remote().future()) for worker in workers], return_exceptions=True
        )  # a worker being restarted does not answer
        totals.take([reply for reply in replies if isinstance(reply, dict)])


class _Totals:
    """Each worker process's latest totals, summed into the build's accounting. A restarted worker is a new
    process: what its dead one reported stays counted."""

    def __init__(self, accounting: Accounting):
        self.accounting = accounting
        self.latest: dict[str, dict] = {}

    def take(self, replies: list[dict]) -> None:
        for reply in replies:
            if reply["snapshot"] > self.latest.get(reply["worker"], {"snapshot": 0})["snapshot"]:
                self.latest[reply["worker"]] = reply
        self.accounting.by_stage_model.clear()
        for latest in self.latest.values():
            for stage, model, fields in latest["usage"]:
                self.accounting.usage(stage, model).add(Usage(**fields))


def _reply(call: asyncio.Future) -> dict:
    try:
        return call.result()
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, EndpointError):  # the endpoint refused the run: the user's to fix
            raise error.cause from None
        raise
