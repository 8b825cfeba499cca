"""When a discipline unit may start, and when it may go on to its questions: from there on a unit holds nearly
all its rows and sends nearly all its requests. One Admission per event loop and engine (a local build's, or
a Ray worker's):

- a unit goes on to its questions when no unit has, or when fewer than UNITS_IN_FLIGHT have, the endpoints
  could take more requests than the units' stages keep in flight (a stage near its end, a unit between
  stages), and what the admitted units will hold in memory stays within BYTES_IN_FLIGHT. A unit's rows go to
  disk as its stages make them (builder/unit/spill.py): what it holds is a few chunks of rows (the most a finished
  unit held, UnitResult.held_bytes; BYTES_PER_UNIT until one has finished) and, per question, the figures its
  quality steps and stats keep (dedup's fingerprints, ids, openings: BYTES_PER_QUESTION). A unit of the paper's
  size (45,000 questions and answers) claims more than one of a few thousand, so fewer such units are in flight;
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
from ..unit.spill import CHUNK_ROWS
from ..unit.store import UnitResult

UNITS_IN_FLIGHT = 8
UNITS_AHEAD = 2
BYTES_IN_FLIGHT = 384 << 20  # held by the units past their syllabi; one unit alone may hold more
# Two chunks of rows (one being spilled, one being read) of instructions with 300-word answers (~5 KB a row).
BYTES_PER_UNIT = 2 * CHUNK_ROWS * (5 << 10)
# A question's figures: dedup's fingerprints (~300 bytes), its near-twin figures, its ids and opening (~1 KB).
BYTES_PER_QUESTION = 2 << 10


class Admission:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.started = 0  # units started and not ended
        self.admitted = 0  # of those, the units past their syllabi
        self.held = 0  # the bytes those units claimed
        self.bytes_per_unit = BYTES_PER_UNIT  # the most a finished unit held in chunks of rows

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
        """Waits until the unit may start; gives the `wait_for_room(questions)` to hand to run_unit."""
        await self._until(lambda: self.started - self.admitted < UNITS_AHEAD)
        self.started += 1
        admitted, claim = False, 0

        async def wait_for_room(questions: int) -> None:
            nonlocal admitted, claim
            claim = self.bytes_per_unit + questions * BYTES_PER_QUESTION
            await self._until(lambda: self._room(claim))
            # The unit goes on to queue its questions with no await in between: whoever judges the demand next
            # sees them (Engine.map counts a stage's demand when it is called).
            admitted = True
            self.admitted += 1
            self.held += claim

        try:
            yield wait_for_room
        finally:
            self.started -= 1
            self.admitted -= admitted
            self.held -= claim if admitted else 0
            self.engine.hungry.set()  # another may start now

    async def run(
        self, run: Run, discipline: DisciplineRef, depth: int, benchmarks: list[BenchmarkIndex]
    ) -> UnitResult:
        """The unit of `discipline`, run once admitted: how every executor runs one."""
        async with self.unit() as wait_for_room:
            result = await run_unit(run, self.engine, discipline, depth, benchmarks, wait_for_room)
        self.learn(result)
        return result

    def learn(self, result: UnitResult) -> None:
        """What a finished unit held in chunks of rows: later units claim at least that."""
        self.bytes_per_unit = max(self.bytes_per_unit, result.held_bytes())

    def _room(self, claim: int) -> bool:
        return (
            not self.admitted
            or (self.admitted < UNITS_IN_FLIGHT and self.engine.wants_work)
            and self.held + claim <= BYTES_IN_FLIGHT
        )

    async def _until(self, condition: Callable[[], bool]) -> None:
        # Checked and waited for with no await in between: a change cannot slip by unseen.
        while not condition():
            self.engine.hungry.clear()
            await self.engine.hungry.wait()
