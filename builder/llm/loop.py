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
- Called where an event loop runs already (a Jupyter cell, an `async def` calling glan's synchronous API), the
  coroutine runs on a loop of its own in a worker thread, and the caller waits for it: the caller's loop cannot
  run a second loop in its thread (`asyncio.run() cannot be called from a running event loop`), and the
  caller asked for a synchronous call. An interrupt while waiting cancels the coroutine, as it would in a script.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import Callable, Coroutine
from typing import Any

try:
    import uvloop

    _run_loop: Callable[[Coroutine[Any, Any, Any]], Any] = uvloop.run
except ImportError:  # Windows: uvloop does not exist there
    _run_loop = asyncio.run


GC_THRESHOLD = 100_000  # Python's default: 700


def run(coroutine: Coroutine):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coroutine)
    return _run_in_a_thread(coroutine)


def _run_in_a_thread(coroutine: Coroutine):
    # Waited on as events, not with Thread.join: a join that an interrupt cuts short may return at once the next
    # time, before the thread has ended (Python up to 3.12).
    started, finished = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    async def main():
        outcome["loop"], outcome["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await coroutine

    def target() -> None:
        try:
            outcome["value"] = _run_here(main())
        except BaseException as error:  # handed to the caller's thread, which raises it
            outcome["error"] = error
        finally:
            started.set()
            finished.set()

    try:
        # Started inside the try: Thread.start waits for the thread to run, and an interrupt may come in that wait.
        threading.Thread(target=target, name="glan-event-loop", daemon=True).start()
        finished.wait()
    except KeyboardInterrupt:
        started.wait()
        if "task" in outcome and not finished.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the coroutine has ended
                outcome["loop"].call_soon_threadsafe(outcome["task"].cancel)
        finished.wait()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _run_here(coroutine: Coroutine):
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        return _run_loop(coroutine)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
