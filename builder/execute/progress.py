"""What a build shows while it runs. On a terminal, a bar over the disciplines with requests, cache hits,
failures and cost; elsewhere (CI, nohup, a pipe to tee) one such line every INTERVAL_S seconds, so a long
build is never silent. Both read the accounting a few times a second at most: requests pay nothing for it."""

from __future__ import annotations

import asyncio
import sys
import time

from tqdm import tqdm

from ..llm.accounting import Accounting

INTERVAL_S = 10.0  # between two status lines off a terminal
REFRESH_S = 0.5  # between two refreshes of the bar


class Progress:
    def __init__(self, units: int, accounting: Accounting, terminal: bool):
        self.units, self.done, self.accounting = units, 0, accounting
        self.started = time.monotonic()
        self.bar = (
            tqdm(total=units, desc="disciplines", unit="unit", file=sys.stderr, dynamic_ncols=True)
            if terminal and units
            else None
        )

    def unit_done(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()

    def status(self) -> str:
        total = self.accounting.total()
        seconds = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{total.requests:,} requests ({total.requests / seconds:,.0f}/s), {total.cache_hits:,} cache hits, "
            f"{total.failed:,} failed, {total.cost:.4f} USD"
        )

    async def ticking(self) -> None:
        if not self.units:
            return
        while True:
            await asyncio.sleep(REFRESH_S if self.bar is not None else INTERVAL_S)
            if self.bar is not None:
                self.bar.set_postfix_str(self.status(), refresh=True)
            else:
                print(f"glan: {self.done}/{self.units} disciplines; {self.status()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.status(), refresh=False)
            self.bar.close()
