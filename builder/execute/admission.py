"""When a discipline unit may start, and when it may go on to its questions: from there on a unit holds nearly
all its rows and sends nearly all its requests. One Admission per event loop and engine (a local build's, or
a Ray worker's):

- a unit goes on to its questions when no unit has, or when fewer than UNITS_IN_FLIGHT have and the endpoints
  could take more requests than the units' stages keep in flight (a stage near its end, a unit between
  stages): memory holds only those units' rows, and a unit of a few thousand questions has them alone;
- up to UNITS_AHEAD more units run their subjects and syllabi meanwhile (a few requests and rows each), so that
  one is ready the moment there is room: otherwise the endpoints would wait two round trips (its subjects,
  then its syllabi) for each new unit's questions.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from ..llm.engine import Engine
from ..plan import Run
from ..quality import BenchmarkIndex
from ..taxonomy import DisciplineRef
from ..unit.chain import run_unit
from ..unit.store import UnitResult

UNITS_IN_FLIGHT = 8
UNITS_AHEAD = 2


class Admission:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.started = 0  # units started and not ended
        self.admitted = 0  # of those, the units past their syllabi

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Waits until the unit may start; gives the `wait_for_room` to hand to run_unit."""
        await self._until(lambda: self.started - self.admitted < UNITS_AHEAD)
        self.started += 1
        admitted = False

        async def wait_for_room() -> None:
            nonlocal admitted
            await self._until(self._room)
            # The unit goes on to queue its questions with no await in between: whoever judges the demand next
            # sees them (Engine.map counts a stage's demand when it is called).
            admitted = True
            self.admitted += 1

        try:
            yield wait_for_room
        finally:
            self.started -= 1
            self.admitted -= admitted
            self.engine.hungry.set()  # another may start now

    async def run(
        self, run: Run, discipline: DisciplineRef, depth: int, benchmarks: list[BenchmarkIndex]
    ) -> UnitResult:
        """The unit of `discipline`, run once admitted: how every executor runs one."""
        async with self.unit() as wait_for_room:
            return await run_unit(run, self.engine, discipline, depth, benchmarks, wait_for_room)

    def _room(self) -> bool:
        return not self.admitted or (self.admitted < UNITS_IN_FLIGHT and self.engine.wants_work)

    async def _until(self, condition: Callable[[], bool]) -> None:
        # Checked and waited for with no await in between: a change cannot slip by unseen.
        while not condition():
            self.engine.hungry.clear()
            await self.engine.hungry.wait()
