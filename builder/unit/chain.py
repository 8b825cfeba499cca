"""The unit of work: one discipline through the stages and their quality steps (builder/unit/store.py writes
its files). Its requests go through its own cache file, so whichever process runs the unit is the only one writing
it; a unit that was interrupted resumes per request from the cache."""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import cast

from ..llm.attempts import LLMRequest, LLMResult
from ..llm.cache import Cache, unit_cache_path
from ..llm.engine import Engine
from ..plan import Run, StagePlan
from ..quality import BenchmarkIndex, Reread, Rows
from ..stages import FEATURES, TAXONOMY, Stage, refines
from ..taxonomy import DisciplineRef
from .spill import Spill
from .store import TOKEN_KINDS, UnitResult, staging_folder


async def run_unit(
    run: Run,
    engine: Engine,
    discipline: DisciplineRef,
    depth: int,
    benchmarks: list[BenchmarkIndex],
    wait_for_room: Callable[[int], Awaitable] | None = None,
) -> UnitResult:
    """The discipline's rows of the first `depth` stages (of those the run runs), with the quality steps between
    them; its requests go through its own cache file, so whichever process runs the unit is the only one writing it.
    Its rows go to spill files in a staging folder of the unit's as each stage makes them (builder/unit/spill.py), and
    UnitStore.write turns that folder into the unit's; an estimate (offline) keeps them in memory and writes nothing.

    `wait_for_room` is awaited before the stage that holds the unit (the questions): from there on a unit sends
    nearly all its requests and keeps nearly all its figures, so the caller bounds how many units are past it (its
    subjects and syllabi are few rows, and can be ready before there is room). It is given the requests that stage
    will make, which is what the unit's figures grow with."""
    # Offline (an estimate) reads the unit's cache and writes nothing.
    cache = Cache(
        unit_cache_path(run.work_dir, discipline.discipline_id), fallback=engine.cache, read_only=engine.offline
    )
    result = UnitResult(depth=depth, folder=None if engine.offline else staging_folder(run, discipline))
    try:
        await _run_unit(run, engine, cache, discipline, benchmarks, wait_for_room, result)
    except BaseException:
        result.discard()
        raise
    finally:
        cache.commit()  # here, on the loop's thread, where the responses were put
        await asyncio.to_thread(cache.close)  # it syncs the file to disk: not on the thread sending requests
    if result.batched:  # nothing is written: the unit runs again after the Batch API answers
        result.discard()
    return result


async def _run_unit(
    run: Run,
    engine: Engine,
    cache: Cache,
    discipline: DisciplineRef,
    benchmarks: list[BenchmarkIndex],
    wait_for_room,
    result: UnitResult,
) -> None:
    discipline_row = vars(discipline)
    taxonomy = result.spill(TAXONOMY)
    taxonomy.add([{key: discipline_row[key] for key in FEATURES[TAXONOMY]}])
    result.rows[TAXONOMY] = {"train": taxonomy.close()}
    parents: Reread[dict] = [discipline_row]
    for stage_class in run.chain(result.depth):
        plan = run.stages[stage_class.name]
        stage = plan.make()
        if stage.holds_the_unit and wait_for_room is not None:
            await wait_for_room(len(parents) * stage.requests_per_input(run.generation))
        new_rows = functools.partial(result.spill, stage.config)
        rows = new_rows()
        failed = await _run_stage(engine, cache, plan, stage, parents, result, rows)
        rows.close()
        if result.batched:
            return
        splits = await stage.finish(rows, failed, benchmarks, result.quality, new_rows)
        if refines(stage_class):
            splits = await asyncio.to_thread(
                _in_splits_of, result.rows[stage.config], splits["train"], stage.item_id, new_rows
            )
        result.rows[stage.config] = cast(dict[str, Spill], splits)  # what a stage keeps is in spills it was given
        parents = _SplitsInOrder(splits)


class _SplitsInOrder:
    """The rows of every split of a config, one split after the other: the next stage's parents, read a chunk at a
    time."""

    def __init__(self, splits: dict[str, Rows]):
        self.splits = list(splits.values())

    def __len__(self) -> int:
        return sum(map(len, self.splits))

    def __iter__(self) -> Iterator[dict]:
        for split in self.splits:
            yield from split


def _in_splits_of(before: Mapping[str, Rows], rows: Rows, item_id, new_rows) -> dict[str, Rows]:
    """`rows` (a stage's rows refining those of the stage before, in the order of their items: every split of
    `before`, one after the other) in the split, and the order, of the row they came from."""
    refined = iter(rows)
    head = next(refined, None)
    splits = {}
    for split, old in before.items():
        kept = new_rows()
        for row in old:
            if head is not None and item_id(head) == item_id(row):
                kept.add([head])
                head = next(refined, None)
        splits[split] = kept.close()
        old.remove()
    rows.remove()
    return splits


async def _run_stage(
    engine: Engine, cache: Cache, plan: StagePlan, stage: Stage, parents: Reread[dict], result: UnitResult, rows: Spill
) -> list[tuple[dict, str]]:
    """Puts the stage's rows in `rows` as its requests are answered, in order; returns the items that got no valid
    output with their last failure reason."""
    # The parents are read twice: to count the requests (in a thread, as they are read from disk), then to make them.
    count: int = await asyncio.to_thread(lambda: sum(len(stage.samples(item)) for item in stage.inputs(parents)))
    pending: deque[tuple[dict, list[int]]] = deque()  # items whose requests went to the engine, not all answered

    def requests() -> Iterator[LLMRequest]:  # rendered one at a time, as the engine takes them
        for item in stage.inputs(parents):
            samples = stage.samples(item)
            pending.append((item, samples))
            messages = plan.prompt.render(**stage.context(item))
            for sample_index in samples:
                yield LLMRequest(
                    stage.item_id(item),
                    messages,
                    plan.params,
                    plan.output_model,
                    sample_index,
                    stage.prompt_cache_key(item),
                )

    counts = result.requests.setdefault(plan.name, {"succeeded": 0, "failed": 0})
    tokens = result.tokens.setdefault(plan.name, dict.fromkeys(TOKEN_KINDS, 0))
    item_results: list[LLMResult] = []  # the results of the oldest pending item so far
    failed: list[tuple[dict, str]] = []

    def on_result(item_result: LLMResult) -> None:
        item_results.append(item_result)
        item, samples = pending[0]
        if len(item_results) < len(samples):
            return
        pending.popleft()
        for sample_index, sample_result in zip(samples, item_results, strict=True):
            counts["succeeded"] += sample_result.ok
            for kind, count in zip(TOKEN_KINDS, sample_result.tokens, strict=True):
                tokens[kind] += count
            if sample_result.failure is not None:
                counts["failed"] += 1
                result.failures.append(
                    {
                        "stage": plan.name,
                        "item_id": stage.item_id(item),
                        "sample_index": sample_index,
                        "reason": sample_result.failure,
                        "attempts": sample_result.attempts,
                        "last_output": sample_result.last_output[:200],
                    }
                )
            result.complete &= not (sample_result.skipped or sample_result.transient)
            result.batched |= sample_result.batched
        values = [sample_result.value for sample_result in item_results if sample_result.ok]
        if values:
            rows.add(stage.parse(item, values))
        elif item_results[-1].failure:
            failed.append((item, item_results[-1].failure))
            rows.add(stage.unanswered(item))
        item_results.clear()

    await engine.stream(plan.name, plan.route, requests(), cache, on_result, count=count, batch=plan.batch)
    return failed
