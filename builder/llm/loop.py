"""The event loop every build runs in.

- uvloop where it exists (Linux, macOS), asyncio's own elsewhere: the client's CPU per request is most of
  what limits a build against a fast endpoint, and uvloop cuts the event loop's share of it
  (tests/benchmarks/engine_bench.py).
- Python's cyclic garbage collector runs a twentieth as often meanwhile, and never walks what existed
  before the loop started (modules, settings): with the default thresholds it spent a fifth of a build's
  CPU walking rows and modules, for the few reference cycles requests leave behind (measured on 30
  disciplines, 54k requests: 6.3 s of 26 s, against 0.8 s of 22 s).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine

try:
    import uvloop
except ImportError:  # Windows: uvloop does not exist there
    uvloop = None

GC_THRESHOLD = 100_000  # allocations between two collections of the youngest generation (Python's default: 700)


def run(coroutine: Coroutine):
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        return uvloop.run(coroutine) if uvloop else asyncio.run(coroutine)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
