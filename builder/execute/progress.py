"""What a build shows while it runs, counted in requests: per stage the items done of those the settings expect
(`~` where a stage's count is extrapolated from the one before), the rate, the time left at that rate, the cost so
far and the cost projected over the whole run. On a terminal a bar over the requests carries it; elsewhere (CI,
nohup, a pipe to tee) one status line every INTERVAL_S seconds, so a long build is never silent. Both read the
accounting a few times a second at most: requests pay nothing for it.

An item is done when the engine has its outcome (answered, from the cache or the endpoint; failed after every
attempt; skipped by a budget). At paper scale the discipline count sits at 0/N for hours; the requests move."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Mapping

from tqdm import tqdm

from ..llm.accounting import Accounting
from ..plan import Run
from ..wording import counted

INTERVAL_S = 10.0  # between two status lines off a terminal
REFRESH_S = 0.5  # between two refreshes of the bar

log = logging.getLogger("glan")


def expected_items(run: Run, units: int, depth: int) -> dict[str, float]:
    """Requests per stage of `units` of the run's disciplines, by the settings (the first stage's exact)."""
    share = units / len(run.disciplines) if run.disciplines else 0.0
    return {stage: count * share for stage, count in run.expected_requests(depth).items()}


class Progress:
    def __init__(self, units: int, accounting: Accounting, terminal: bool, expected: Mapping[str, float] = {}):
        self.units, self.done, self.accounting, self.expected = units, 0, accounting, dict(expected)
        self.started = time.monotonic()
        self.bar = (
            tqdm(
                total=math.ceil(sum(self.expected.values())) or None,
                desc="requests",
                unit="req",
                file=sys.stderr,
                dynamic_ncols=True,
            )
            if terminal and units
            else None
        )

    def unit_done(self) -> None:
        self.done += 1

    def _done(self) -> dict[str, int]:
        """Items with an outcome, per stage of the run."""
        done = {}
        for stage in self.expected:
            usage = self.accounting.stage_total(stage)
            done[stage] = usage.succeeded + usage.failed + usage.skipped
        return done

    def figures(self) -> str:
        """Per stage done/expected, then the totals' cost, projected cost and failures (the bar shows rate and ETA)."""
        done = self._done()
        stages = ", ".join(
            f"{stage} {done[stage]:,}/{'~' if index else ''}{math.ceil(max(expected, done[stage])):,}"
            for index, (stage, expected) in enumerate(self.expected.items())
        )
        total = self.accounting.total()
        return f"{stages}; {total.cost:.4f} USD, {self._projected(sum(done.values()))}; {total.failed:,} failed"

    def _projected(self, done: int) -> str:
        """The whole run's cost at the cost per item done so far (cache hits, which cost nothing, included: a rerun's
        remaining items are cached in the same share); "projected ?" before anything is paid."""
        cost = self.accounting.total().cost
        if not done or not cost:
            return "projected ?"
        return f"projected ~{cost / done * max(done, sum(self.expected.values())):.4f}"

    def status(self) -> str:
        """The line off a terminal: disciplines, requests per stage, the rate, the time left, cost and projection."""
        done = sum(self._done().values())
        expected = max(sum(self.expected.values()), done)
        seconds = max(time.monotonic() - self.started, 1e-9)
        rate = done / seconds
        left = f"ETA {_duration((expected - done) / rate)}" if rate else "ETA ?"
        return (
            f"{self.done}/{counted(self.units, 'discipline')}; requests {done:,}/~{math.ceil(expected):,} "
            f"({rate:,.1f}/s, {left}): {self.figures()}"
        )

    async def ticking(self) -> None:
        if not self.units:
            return
        logged = time.monotonic()
        while True:
            await asyncio.sleep(REFRESH_S if self.bar is not None else INTERVAL_S)
            if self.bar is None:
                log.info(f"glan: {self.status()}")
                continue
            self._refresh_bar()
            if time.monotonic() - logged >= INTERVAL_S:  # the log file gets the lines the bar stands for
                log.debug(f"glan: {self.status()}", extra={"file_only": True})
                logged = time.monotonic()

    def _refresh_bar(self) -> None:
        assert self.bar is not None
        done = sum(self._done().values())
        if self.bar.total is not None and done > self.bar.total:
            self.bar.total = done
        self.bar.n = done
        self.bar.set_postfix_str(f"{self.done}/{counted(self.units, 'discipline')}; {self.figures()}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self._refresh_bar()
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
