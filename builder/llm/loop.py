"""The event loop every build runs in.

- uvloop where it exists (Linux, macOS), asyncio's own elsewhere: the client's CPU per request is most of
  what limits a build against a fast endpoint, and uvloop cuts the event loop's share of it
  (tests/benchmarks/engine_bench.py).
- Python's cyclic garbage collector never walks what existed before the loop started (modules, settings,
  datasets' and pyarrow's imports), and runs its youngest generation every GC_THRESHOLD allocations instead of
  every 700. A build leaves few reference cycles (the rows and results of a stage are freed by reference
  counting), and with the defaults the collector cost about a fifth of a build's CPU. Measured with
  tests/benchmarks/scale_bench.py, all 149 disciplines at 100 questions per subject: 0.43 ms of CPU per
  request and 495 MB peak RSS, against 0.50 to 0.58 ms and 345 MB with the defaults (frozen as here).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine

try:
    import uvloop
except ImportError:  # Windows: uvloop does not exist there
    uvloop = None


GC_THRESHOLD = 100_000  # Python's default: 700


def run(coroutine: Coroutine):
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        return uvloop.run(coroutine) if uvloop else asyncio.run(coroutine)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
