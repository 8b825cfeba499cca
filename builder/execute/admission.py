"""When a discipline unit may start, and when it may go on to its questions: from there on a unit holds nearly
all its rows and sends nearly all its requests. One Admission per event loop and engine (a local build's, or
a Ray worker's):

- a unit goes on to its questions when no unit has, or when fewer than UNITS_IN_FLIGHT have, the endpoints
  could take more requests than the units' stages keep in flight (a stage near its end, a unit between
  stages), and the rows the admitted units will hold stay within BYTES_IN_FLIGHT: memory holds only those
  units' rows. What a unit will hold is its questions times the bytes a question and its answer took in the
  units finished so far (BYTES_PER_QUESTION until one has): a unit of the paper's size (45,000 questions and
  answers) claims as much as ten of a few thousand, so fewer such units are in flight;
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
from ..stages import STAGES
from ..taxonomy import DisciplineRef
from ..unit.chain import run_unit
from ..unit.store import UnitResult

HOLDING_STAGE = next(stage.name for stage in STAGES if stage.holds_the_unit)

UNITS_IN_FLIGHT = 8
UNITS_AHEAD = 2
BYTES_IN_FLIGHT = 384 << 20  # of rows, in the units past their syllabi; one unit alone may hold more
BYTES_PER_QUESTION = 8 << 10  # a question row (~2.9 KB) and its instruction row with a 300-word answer (~4.9 KB)


class Admission:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.started = 0  # units started and not ended
        self.admitted = 0  # of those, the units past their syllabi
        self.held = 0  # the bytes of rows those units claimed
        self.bytes_per_question = BYTES_PER_QUESTION  # the most a finished unit held per question

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
        """Waits until the unit may start; gives the `wait_for_room(questions)` to hand to run_unit."""
        await self._until(lambda: self.started - self.admitted < UNITS_AHEAD)
        self.started += 1
        admitted, claim = False, 0

        async def wait_for_room(questions: int) -> None:
            nonlocal admitted, claim
            claim = questions * self.bytes_per_question
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
        """What a finished unit held per question: later units claim at least that."""
        questions = result.requests.get(HOLDING_STAGE, {})
        asked = questions.get("succeeded", 0) + questions.get("failed", 0)
        if asked:
            self.bytes_per_question = max(self.bytes_per_question, result.held_bytes() // asked)

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
