"""The event loop every build runs in.

- uvloop where it exists (Linux, macOS), asyncio's own elsewhere: the client's CPU per request is most of
  what limits a build against a fast endpoint, and uvloop cuts the event loop's share of it
  (tests/benchmarks/engine_bench.py).
- Python's cyclic garbage collector never walks what existed before the loop started (modules, settings,
  datasets' and pyarrow's imports), and runs its youngest generation every GC_THRESHOLD allocations instead of
  every 700. A build leaves few reference cycles (a stage's rows and results, and a unit's dedup index, are
  freed by reference counting), so the collector has little to find. Measured on builds of all 149
  disciplines at 10 questions per subject at 0 latency, two of each: 0.44 and 0.47 ms of CPU per request,
  against 0.46 and 0.54 ms with the default threshold, at the same peak RSS (239 to 248 MB).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

try:
    import uvloop

    _run_loop: Callable[[Coroutine[Any, Any, Any]], Any] = uvloop.run
except ImportError:  # Windows: uvloop does not exist there
    _run_loop = asyncio.run


GC_THRESHOLD = 100_000  # Python's default: 700


def run(coroutine: Coroutine):
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        return _run_loop(coroutine)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
