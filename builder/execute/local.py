"""The local executor: the units run concurrently in this process's event loop and share one engine, so each
endpoint's limits hold for all of them; builder/execute/admission.py decides when each may start and go on to its
questions, so that memory holds only the rows of the units the endpoints need to stay full. In Batch API mode the
units run in rounds: each round runs every unfinished unit until it needs answers a batch must give, the collected
lines are submitted and waited for, and the next round resumes the units from the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..llm import loop
from ..llm.engine import Engine
from ..llm.reach import check_reachable
from ..plan import Run
from ..quality import BenchmarkIndex
from ..taxonomy import DisciplineRef
from ..unit.store import UnitFiles, UnitResult
from .admission import Admission
from .base import EngineFigures, Executed, Executor
from .engine import engine_for
from .progress import Progress, expected_items


class LocalExecutor(Executor):
    def execute(self, disciplines: list[DisciplineRef], depth: int) -> Executed:
        run, store = self.run, self.store
        written: list[UnitFiles] = []

        async def write(ref: DisciplineRef, result: UnitResult) -> None:
            written.append(await store.put(ref, result))

        with engine_for(run) as engine:
            if any(plan.batch for plan in run.stages.values()):
                # Imported here: it imports openai, a second of CPU that a build without batches skips.
                from ..llm.batch import BatchRunner

                engine.batches = BatchRunner(
                    engine, run.limits.batch_poll_s, {name: plan.batch_fallback for name, plan in run.stages.items()}
                )
            if disciplines:
                loop.run(
                    check_reachable({endpoint for plan in run.stages.values() for endpoint in plan.route.endpoints})
                )
            loop.run(
                drive_units(
                    run,
                    engine,
                    disciplines,
                    depth,
                    store.benchmarks,
                    write,
                    Progress(
                        len(disciplines),
                        engine.accounting,
                        self.progress,
                        expected_items(run, len(disciplines), depth),
                    ),
                )
            )
        return Executed(written, engine.accounting, EngineFigures.of(engine))


async def drive_units(
    run: Run,
    engine: Engine,
    disciplines: list[DisciplineRef],
    depth: int,
    benchmarks: list[BenchmarkIndex],
    on_result: Callable[[DisciplineRef, UnitResult], Awaitable],
    progress: Progress,
) -> None:
    """Run the units of `disciplines`, handing each finished one to `await on_result(ref, result)`; in Batch API
    rounds when some stage goes through batches. (`glan estimate` drives units this way on an offline engine.)"""
    waiting = list(disciplines)
    async with engine:
        ticker = asyncio.ensure_future(progress.ticking())
        try:
            while waiting:
                batched = await _run_round(run, engine, waiting, depth, benchmarks, on_result, progress)
                if not batched:
                    break
                await asyncio.to_thread(engine.batches.submit_and_wait)
                waiting = batched
        finally:
            ticker.cancel()
            progress.close()


async def _run_round(run, engine, disciplines, depth, benchmarks, on_result, progress) -> list[DisciplineRef]:
    """One pass over `disciplines`, as many at once as `Admission` lets; returns those that wait for a batch."""
    admission, batched = Admission(engine), []

    async def one(ref: DisciplineRef) -> None:
        result = await admission.run(run, ref, depth, benchmarks)
        if result.batched:
            batched.append(ref)
        else:
            await on_result(ref, result)
            progress.unit_done()

    units = [asyncio.ensure_future(one(ref)) for ref in disciplines]  # each waits for its turn to start
    try:
        await asyncio.gather(*units)
    finally:
        for unit in units:
            unit.cancel()
        await asyncio.gather(*units, return_exceptions=True)
    return batched
