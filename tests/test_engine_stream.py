"""Engine.stream gives results in request order while later requests run ahead (at most AHEAD windows): a request
or a result that raises stops the stage with that error, and no request more is sent after it."""

import asyncio

import pytest

from glan.config.settings import Limits
from glan.llm.accounting import Accounting
from glan.llm.attempts import LLMRequest, LLMResult
from glan.llm.cache import Cache
from glan.llm.engine import AHEAD, Engine
from glan.llm.routes import Endpoint, Route

CONCURRENCY = 2
REQUESTS = 100  # far more than AHEAD windows of CONCURRENCY workers: the window parks workers
FAILING = 5  # the request, or the result, that raises
PATIENCE_S = 60  # the stage ends at once; a hang is seen here instead of stalling the suite


class Refused(Exception):
    pass


def _stream(tmp_path, fail_in: str) -> tuple[BaseException | None, list[int], list[int]]:
    """The error the stage ended with, the indices whose requests were sent, and those given to on_result."""
    engine = Engine(Cache(tmp_path / "cache.sqlite"), Limits(concurrency=CONCURRENCY), Accounting({}))
    route = Route("m", (Endpoint("http://127.0.0.1:1/v1"),))
    requests = [LLMRequest(str(index), [{"role": "user", "content": "q"}], {}, None) for index in range(REQUESTS)]
    sent, given = [], []

    async def complete(stage, route, request, cache, *, batch=False):
        index = int(request.item_id)
        sent.append(index)
        # The failing request is slow, so that the other workers run ahead to the window's end and wait there.
        await asyncio.sleep(0.2 if index == FAILING else 0)
        if fail_in == "request" and index == FAILING:
            raise Refused("the endpoint refused the run")
        return LLMResult(value=index)

    def on_result(result: LLMResult) -> None:
        if fail_in == "result" and result.value == FAILING:
            raise Refused("the disk is full")
        given.append(result.value)

    engine.complete = complete
    error = None

    async def run():
        await asyncio.wait_for(engine.stream("s", route, requests, engine.cache, on_result), PATIENCE_S)

    try:
        asyncio.run(run())
    except (Refused, TimeoutError) as raised:
        error = raised
    return error, sent, given


@pytest.mark.parametrize("fail_in", ["request", "result"])
def test_an_error_ends_the_stage_even_when_workers_wait_for_the_oldest_result(tmp_path, fail_in):
    error, sent, given = _stream(tmp_path, fail_in)
    assert isinstance(error, Refused), f"the stage did not end within {PATIENCE_S} s: {error!r}"
    assert given == list(range(FAILING))
    # Requests stop at the window's end, where the workers waited for the failing one: none after the error.
    assert len(sent) == len(set(sent)) and max(sent) < FAILING + 1 + AHEAD * CONCURRENCY


def test_a_worker_waiting_for_the_oldest_result_is_no_demand_on_the_endpoint(tmp_path):
    """While the oldest request is slow, the workers that ran ahead to the window's end wait: the engine counts only
    the one in flight as demand, so that admission lets another unit's requests use the endpoint meanwhile."""
    engine = Engine(Cache(tmp_path / "cache.sqlite"), Limits(concurrency=CONCURRENCY), Accounting({}))
    route = Route("m", (Endpoint("http://127.0.0.1:1/v1"),))
    requests = [LLMRequest(str(index), [{"role": "user", "content": "q"}], {}, None) for index in range(REQUESTS)]
    queued_while_parked = []

    async def complete(stage, route, request, cache, *, batch=False):
        index = int(request.item_id)
        if index == FAILING:  # slow: the other worker runs to the window's end and waits there
            while not queued_while_parked:
                await asyncio.sleep(0.01)
                if index + AHEAD * CONCURRENCY - 1 in sent:
                    await asyncio.sleep(0.05)  # the other worker has reached the window's end and parked
                    queued_while_parked.append(engine.queued)
        sent.add(index)
        return LLMResult(value=index)

    sent: set[int] = set()
    engine.complete = complete
    given = []
    asyncio.run(asyncio.wait_for(engine.stream("s", route, requests, engine.cache, given.append), PATIENCE_S))
    assert queued_while_parked == [1] and engine.queued == 0
    assert [result.value for result in given] == list(range(REQUESTS))
