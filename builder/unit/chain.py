"""The unit of work: one discipline through the stages and their quality steps (builder/unit/store.py writes
its files). Its requests go through its own cache file, so whichever process runs the unit is the only one writing
it; a unit that was interrupted resumes per request from the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

from ..llm.attempts import LLMRequest, LLMResult
from ..llm.cache import Cache, unit_cache_path
from ..llm.engine import Engine
from ..plan import Run, StagePlan
from ..quality import BenchmarkIndex
from ..stages import FEATURES, TAXONOMY, Stage, refines
from ..taxonomy import DisciplineRef
from .store import TOKEN_KINDS, UnitResult


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

    `wait_for_room` is awaited before the stage that holds the unit (the questions): from there on a unit holds
    nearly all its rows and sends nearly all its requests, so the caller bounds how many units are past it (its
    subjects and syllabi are few rows, and can be ready before there is room). It is given the requests that stage
    will make, which is what the unit's rows grow with."""
    # Offline (an estimate) reads the unit's cache and writes nothing.
    cache = Cache(
        unit_cache_path(run.work_dir, discipline.discipline_id), fallback=engine.cache, read_only=engine.offline
    )
    try:
        return await _run_unit(run, engine, cache, discipline, depth, benchmarks, wait_for_room)
    finally:
        cache.commit()  # here, on the loop's thread, where the responses were put
        await asyncio.to_thread(cache.close)  # it syncs the file to disk: not on the thread sending requests


async def _run_unit(
    run: Run,
    engine: Engine,
    cache: Cache,
    discipline: DisciplineRef,
    depth: int,
    benchmarks: list[BenchmarkIndex],
    wait_for_room,
) -> UnitResult:
    result = UnitResult(depth=depth)
    discipline_row = vars(discipline)
    result.rows[TAXONOMY] = {"train": [{key: discipline_row[key] for key in FEATURES[TAXONOMY]}]}
    parents = [discipline_row]
    for stage_class in run.chain(depth):
        plan = run.stages[stage_class.name]
        stage = plan.make()
        if stage.holds_the_unit and wait_for_room is not None:
            await wait_for_room(len(parents) * stage.requests_per_input(run.generation))
        rows, failed = await _run_stage(engine, cache, plan, stage, parents, result)
        if result.batched:
            return result
        splits = await stage.finish(rows, failed, benchmarks, result.quality)
        if refines(stage_class):
            splits = _in_splits_of(result.rows[stage.config], splits["train"], stage.item_id)
        result.rows[stage.config] = splits
        parents = [row for split in splits.values() for row in split]
    return result


def _in_splits_of(before: dict[str, list[dict]], rows: list[dict], item_id) -> dict[str, list[dict]]:
    """`rows` (a stage's rows refining those of the stage before) in the split, and the order, of the row they
    came from."""
    by_id = {item_id(row): row for row in rows}
    return {split: [by_id[key] for row in old if (key := item_id(row)) in by_id] for split, old in before.items()}


async def _run_stage(
    engine: Engine, cache: Cache, plan: StagePlan, stage: Stage, parents: list[dict], result: UnitResult
) -> tuple[list[dict], list[tuple[dict, str]]]:
    """The stage's rows, and the items that got no valid output with their last failure reason."""
    items = [(item, stage.samples(item)) for item in stage.inputs(parents)]

    def requests() -> Iterator[LLMRequest]:  # rendered one at a time, as the engine takes them
        for item, samples in items:
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

    count = sum(len(samples) for _, samples in items)
    results = await engine.map(plan.name, plan.route, requests(), cache, count=count, batch=plan.batch)
    results.reverse()  # taken from the end as rows are made: a result (its parsed output) is freed once read
    counts = result.requests.setdefault(plan.name, {"succeeded": 0, "failed": 0})
    tokens = result.tokens.setdefault(plan.name, dict.fromkeys(TOKEN_KINDS, 0))
    rows, failed = [], []
    for item, samples in items:
        item_results: list[LLMResult] = [results.pop() for _ in samples]
        for sample_index, item_result in zip(samples, item_results, strict=True):
            counts["succeeded"] += item_result.ok
            for kind, count in zip(TOKEN_KINDS, item_result.tokens, strict=True):
                tokens[kind] += count
            if item_result.failure is not None:
                counts["failed"] += 1
                result.failures.append(
                    {
                        "stage": plan.name,
                        "item_id": stage.item_id(item),
                        "sample_index": sample_index,
                        "reason": item_result.failure,
                        "attempts": item_result.attempts,
                        "last_output": item_result.last_output[:200],
                    }
                )
            result.complete &= not (item_result.skipped or item_result.transient)
            result.batched |= item_result.batched
        values = [item_result.value for item_result in item_results if item_result.ok]
        if values:
            rows.extend(stage.parse(item, values))
        elif item_results[-1].failure:
            failed.append((item, item_results[-1].failure))
    return rows, failed
