"""The event loop every build runs in.

- uvloop where it exists (Linux, macOS), asyncio's own elsewhere: the client's CPU per request is most of
  what limits a build against a fast endpoint, and uvloop cuts the event loop's share of it
  (tests/benchmarks/engine_bench.py).
- Python's cyclic garbage collector never walks what existed before the loop started (modules, settings,
  datasets' and pyarrow's imports): its full collections otherwise took a tenth of a build's CPU (measured
  on 30 disciplines and 178k requests: 0.47 ms of CPU per request, 0.41 frozen, at the same peak RSS).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine

try:
    import uvloop
except ImportError:  # Windows: uvloop does not exist there
    uvloop = None


def run(coroutine: Coroutine):
    gc.freeze()
    try:
        return uvloop.run(coroutine) if uvloop else asyncio.run(coroutine)
    finally:
        gc.unfreeze()
