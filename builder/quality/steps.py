"""A discipline's quality chain, as small steps that each count what they drop (datatrove's filters are the
model): questions are deduplicated then decontaminated before any answer is paid for; answers are then
filtered and decontaminated in turn. Every step sees one discipline's rows only, so a discipline added later
never drops a row of another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Protocol

from .decontaminate import BenchmarkIndex, decontaminate, pair_texts
from .dedup import Reread, deduplicate_in_slices, duplicates_in_slices
from .filters import ANSWER_DROP_REASONS, answer_drop_reason
from .report import QualityReport
from .slices import Slices, run_on_loop, run_to_end


class Rows(Reread[dict], Protocol):
    """A unit's rows of one config as its stages leave them (builder/unit/spill.py): read a chunk at a time."""

    def chunks(self) -> Iterator[list[dict]]: ...

    def remove(self) -> None: ...


class Kept(Protocol):
    """Where a step puts the rows it keeps (builder/unit/spill.py)."""

    def add(self, rows: Iterable[dict]) -> None: ...

    def close(self) -> Rows: ...


class QualityStep:
    """Gets rows, returns the ones it keeps in input order, and records in `report` what it dropped and why
    (a reason that dropped nothing still shows, as 0). A step decides on each row alone unless it says otherwise
    (`filter`), so a unit runs it a chunk of rows at a time."""

    def __call__(self, rows: list[dict], report: QualityReport) -> list[dict]:
        raise NotImplementedError

    async def run(self, rows: list[dict], report: QualityReport) -> list[dict]:
        """The step as a unit runs it, on the event loop that sends every unit's requests: in a thread, so that its
        numpy calls over the unit's rows do not hold up those requests."""
        return await asyncio.to_thread(self, rows, report)

    async def filter(self, rows: Rows, report: QualityReport, kept: Kept) -> None:
        """The step over a unit's rows, a chunk at a time in a thread, the rows it keeps added to `kept`."""
        await asyncio.to_thread(self._filter, rows, report, kept)

    def _filter(self, rows: Rows, report: QualityReport, kept: Kept) -> None:
        ran = False
        for chunk in rows.chunks():
            kept.add(self(chunk, report))
            ran = True
        if not ran:  # no rows: the step still shows its reasons, at 0
            self([], report)


class Deduplicate(QualityStep):
    """Exact, then near duplicates (MinHash LSH confirmed by exact Jaccard); the lowest question_id survives."""

    def __init__(self, settings):
        self.settings = settings

    def __call__(self, rows, report):
        return run_to_end(self.in_slices(rows, report))

    async def run(self, rows, report):
        """On the event loop itself, a few milliseconds at a time (builder/quality/dedup.py has the measurements)."""
        return await run_on_loop(self.in_slices(rows, report))

    async def filter(self, rows, report, kept):
        """Decided on all the rows at once, from their fingerprints (dedup.py: a few hundred bytes a row), on the
        event loop as `run`; then the rows are taken a chunk at a time, in a thread."""
        duplicates = await run_on_loop(duplicates_in_slices(rows, **self._options()))
        await asyncio.to_thread(self._without, duplicates, rows, report, kept)

    def _options(self) -> dict:
        """The dedup settings as dedup.py's functions take them."""
        settings = self.settings
        return {
            "exact": settings.exact,
            "near": settings.near,
            "threshold": settings.threshold,
            "num_perm": settings.num_perm,
            "shingle_words": settings.shingle_words,
        }

    def _without(self, duplicates: dict[int, tuple[str, int]], rows: Rows, report: QualityReport, kept: Kept) -> None:
        settings = self.settings
        reasons = [reason for reason, enabled in (("exact", settings.exact), ("near", settings.near)) if enabled]
        for reason in reasons:
            report.record(reason, [])
        index = 0
        for chunk in rows.chunks():
            dropped: dict[str, list[dict]] = {reason: [] for reason in reasons}
            kept_rows = []
            for row in chunk:
                if index in duplicates:
                    dropped[duplicates[index][0]].append(row)
                else:
                    kept_rows.append(row)
                index += 1
            for reason, dropped_rows in dropped.items():
                report.record(reason, dropped_rows)
            kept.add(kept_rows)

    def in_slices(self, rows: list[dict], report: QualityReport) -> Slices[list[dict]]:
        settings = self.settings
        result = yield from deduplicate_in_slices(rows, **self._options())
        for reason, enabled in (("exact", settings.exact), ("near", settings.near)):
            if enabled:
                report.record(reason, [drop.row for drop in result.dropped if drop.reason == reason])
        return result.kept


class Decontaminate(QualityStep):
    """Rows sharing words with a benchmark item (decontaminate.py) are dropped as `contaminated`, with hits counted
    per benchmark and side. `texts_of` gives the sides a row is checked on: a question row before answering (a
    dropped question costs no answer), the answer of a pair after it (its question passed already)."""

    def __init__(self, benchmarks: list[BenchmarkIndex], texts_of: Callable[[dict], dict[str, str]] = pair_texts):
        self.benchmarks, self.texts_of = benchmarks, texts_of

    def __call__(self, rows, report):
        result = decontaminate(rows, self.benchmarks, self.texts_of)
        report.record_hits(result.hits)
        report.record("contaminated", [drop.row for drop in result.dropped])
        return result.kept


class AnswerFilter(QualityStep):
    """Answers that are empty or a refusal (a configured pattern anywhere, any case)."""

    def __init__(self, settings, answer_of: Callable[[dict], str] = itemgetter("answer")):
        self.refusal_patterns, self.answer_of = settings.refusal_patterns, answer_of

    def __call__(self, rows, report):
        kept, dropped = [], {reason: [] for reason in ANSWER_DROP_REASONS}
        for row in rows:
            reason = answer_drop_reason(self.answer_of(row), self.refusal_patterns)
            (dropped[reason] if reason else kept).append(row)
        for reason, rows_dropped in dropped.items():
            report.record(reason, rows_dropped)
        return kept


class MinScore(QualityStep):
    """With a `min_score`: pairs the judge scored below it ("low_score") and pairs it could not score ("unscored")
    are dropped. Without one (None) every pair is kept and nothing is counted."""

    def __init__(self, min_score: int | None):
        self.min_score = min_score

    def __call__(self, rows, report):
        if self.min_score is None:
            return rows
        low = [row for row in rows if row["score"] is not None and row["score"] < self.min_score]
        unscored = [row for row in rows if row["score"] is None]
        report.record("low_score", low)
        report.record("unscored", unscored)
        return [row for row in rows if row["score"] is not None and row["score"] >= self.min_score]


def question_steps(settings, benchmarks: list[BenchmarkIndex]) -> list[QualityStep]:
    """The chain between the questions and the answers stages; `settings` is taxonomy.yaml's `quality:`."""
    steps: list[QualityStep] = [Deduplicate(settings.dedup)]
    if benchmarks:
        steps.append(Decontaminate(benchmarks))
    return steps


async def run_steps(steps: Iterable[QualityStep], rows: list[dict], report: QualityReport) -> list[dict]:
    for step in steps:
        rows = await step.run(rows, report)
    return rows


async def filter_steps(steps: Iterable[QualityStep], rows: Rows, report: QualityReport, new_rows: Callable) -> Rows:
    """`run_steps` over a unit's rows, a chunk at a time: each step's kept rows go to `new_rows()` (a spill, closed
    after the step), and the rows before it are removed."""
    for step in steps:
        kept = new_rows()
        await step.filter(rows, report, kept)
        rows.remove()
        rows = kept.close()
    return rows
