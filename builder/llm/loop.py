"""The event loop every build runs in: uvloop where it exists (Linux, macOS), asyncio's own elsewhere.

The client's CPU per request is most of what limits a build against a fast endpoint, and the event loop
is about a sixth of it; uvloop cuts that part by half or more (measured: tests/benchmarks/engine_bench.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

try:
    import uvloop
except ImportError:  # Windows: uvloop does not exist there
    uvloop = None


def run(coroutine: Coroutine):
    return uvloop.run(coroutine) if uvloop else asyncio.run(coroutine)
