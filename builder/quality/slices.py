"""Work in slices: a generator that yields wherever it may be paused (after each question, after each numpy call
over many), and returns its result.

The build drives one with `run_on_loop`, which gives the event loop a turn whenever SLICE_S has passed, so that
every other unit's requests go on meanwhile; a script or test drives it with `run_to_end`. One implementation
serves both, and unlike a thread it never competes with the event loop for the GIL (builder/quality/dedup.py has
the figures).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Slices = Generator[None, None, Result]

# How long the event loop may wait for a slice, give or take the last step of it.
SLICE_S = 0.002
# Items sorted, or merged, in one step: sorting 2,000 short strings takes about a millisecond.
SORT_STEP = 2048


def run_to_end(slices: Slices[Result]) -> Result:
    while True:
        try:
            next(slices)
        except StopIteration as end:
            return end.value


async def run_on_loop(slices: Slices[Result]) -> Result:
    deadline = time.perf_counter() + SLICE_S
    while True:
        try:
            next(slices)
        except StopIteration as end:
            return end.value
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + SLICE_S


def sorted_in_slices(items: list, key: Callable) -> Slices[list]:
    """`sorted(items, key=key)`: one sort of 40,000 strings holds the GIL for 15-30 ms, so runs of SORT_STEP
    items are sorted, then merged SORT_STEP items at a time."""
    runs = []
    for start in range(0, len(items), SORT_STEP):
        runs.append(sorted(items[start : start + SORT_STEP], key=key))
        yield
    merged, result = heapq.merge(*runs, key=key), []
    while step := list(itertools.islice(merged, SORT_STEP)):
        result.extend(step)
        yield
    return result


def collected(items: Iterable[Item]) -> Slices[list[Item]]:
    """`list(items)`, a step per item."""
    result = []
    for item in items:
        result.append(item)
        yield
    return result
