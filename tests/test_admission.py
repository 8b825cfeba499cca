"""When units start and go on to their questions (builder/admission.py), against an engine whose demand the test sets."""

import asyncio

from glan.execute.admission import (
    BYTES_IN_FLIGHT,
    BYTES_PER_QUESTION,
    BYTES_PER_UNIT,
    UNITS_AHEAD,
    UNITS_IN_FLIGHT,
    Admission,
)
from glan.unit.spill import CHUNK_ROWS
from glan.unit.store import UnitResult


class Demand:
    """What Admission reads of an engine: whether the endpoints could take more requests, and its wake-up."""

    def __init__(self):
        self.wants_work = False
        self.hungry = asyncio.Event()

    def drops(self):
        self.wants_work = True
        self.hungry.set()


async def settle():
    for _ in range(10):
        await asyncio.sleep(0)


SMALL = 1_000  # questions: a unit of a few thousand claims a small share of BYTES_IN_FLIGHT


def run_units(count: int, scenario, questions=lambda number: SMALL, admission=None):
    async def main():
        engine = Demand()
        nonlocal admission
        admission = admission or Admission(engine)
        admission.engine = engine
        started, admitted, finish = [], [], {unit: asyncio.Event() for unit in range(count)}

        async def unit(number: int):
            async with admission.unit() as wait_for_room:
                started.append(number)
                await wait_for_room(questions(number))
                admitted.append(number)
                await finish[number].wait()

        tasks = [asyncio.ensure_future(unit(number)) for number in range(count)]
        await scenario(engine, started, admitted, finish)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def test_the_first_unit_goes_on_at_once_and_others_only_run_ahead_while_the_endpoints_are_full():
    async def scenario(engine, started, admitted, finish):
        await settle()
        # One unit goes on to its questions with nothing else in flight; UNITS_AHEAD more run their syllabi.
        assert admitted == [0]
        assert started == list(range(1 + UNITS_AHEAD))

    run_units(10, scenario)


def test_a_unit_goes_on_when_the_demand_drops_up_to_units_in_flight():
    async def scenario(engine, started, admitted, finish):
        await settle()
        engine.drops()  # and stays low: every waiting unit may go on, up to the bound
        await settle()
        assert len(admitted) == UNITS_IN_FLIGHT
        assert len(started) == UNITS_IN_FLIGHT + UNITS_AHEAD
        engine.wants_work = False
        finish[0].set()  # a place is free, but the endpoints are full: the units ahead wait
        await settle()
        assert len(admitted) == UNITS_IN_FLIGHT
        assert len(started) == UNITS_IN_FLIGHT + UNITS_AHEAD
        engine.drops()  # the next goes on, and the one after it starts ahead
        await settle()
        assert admitted == list(range(UNITS_IN_FLIGHT + 1))
        assert started == list(range(UNITS_IN_FLIGHT + UNITS_AHEAD + 1))

    run_units(20, scenario)


def test_an_ended_unit_lets_the_next_one_start_when_the_endpoints_stay_full():
    async def scenario(engine, started, admitted, finish):
        await settle()
        finish[0].set()
        await settle()
        assert admitted == [0, 1]  # none other was past its syllabi: the next goes on
        assert started == list(range(2 + UNITS_AHEAD))

    run_units(10, scenario)


def test_units_go_on_while_the_rows_they_will_hold_fit_in_bytes_in_flight():
    """Paper-sized units (45,000 questions each) claim their chunks of rows and their questions' figures: only as
    many go on as fit in BYTES_IN_FLIGHT, however hungry the endpoints, and one goes on alone whatever its size."""
    paper = 45_000
    fits = BYTES_IN_FLIGHT // (BYTES_PER_UNIT + paper * BYTES_PER_QUESTION)
    assert 1 <= fits < UNITS_IN_FLIGHT

    async def scenario(engine, started, admitted, finish):
        await settle()
        engine.drops()
        await settle()
        assert admitted == list(range(fits))
        finish[0].set()
        await settle()
        assert admitted == list(range(fits + 1))  # the place it freed, and no more

    run_units(10, scenario, questions=lambda number: paper)

    async def alone(engine, started, admitted, finish):
        await settle()
        engine.drops()
        await settle()
        assert admitted == [0]  # larger than BYTES_IN_FLIGHT on its own: it goes on, alone

    run_units(4, alone, questions=lambda number: 10 * paper)


def test_a_finished_unit_teaches_what_its_chunks_of_rows_hold():
    admission = Admission(Demand())
    result = UnitResult()
    questions = result.spill("questions")
    questions.add([{"question": "x" * 100_000}] * 10)  # a chunk of such rows holds CHUNK_ROWS 100,000-character texts
    questions.close()
    admission.learn(result)
    assert admission.bytes_per_unit >= 2 * CHUNK_ROWS * 100_000  # one chunk spilled, one read
    fits = BYTES_IN_FLIGHT // (admission.bytes_per_unit + 1_000 * BYTES_PER_QUESTION)

    async def scenario(engine, started, admitted, finish):
        await settle()
        engine.drops()
        await settle()
        assert len(admitted) == fits < UNITS_IN_FLIGHT  # units of 1,000 such questions: fewer fit

    run_units(20, scenario, admission=admission)
