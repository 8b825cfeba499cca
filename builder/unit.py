"""The unit of work: one discipline through the four stages and its quality steps, writing its files.

A unit is keyed by a fingerprint of everything that decides its rows: the discipline's own taxonomy entry,
the resolved generation settings, each stage's model, sampling params, prompt and output schema, the
benchmarks it is decontaminated against, and glan's row format. Its files live in
`<work dir>/units/<discipline_id>/<fingerprint>/`: one parquet file per config and split, `unit.json`
(rows, Arrow bytes, sha256 and stats per file; requests and failures per stage) and `failures.jsonl`. A build
that finds a complete unit for a fingerprint does not touch that discipline: no cache replay, no parsing,
no dedup. A unit that was interrupted resumes per request from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .config.resolve import Run, StagePlan
from .llm.attempts import LLMRequest, LLMResult, schema_of
from .llm.cache import Cache, unit_cache_path
from .llm.engine import Engine
from .quality import (AnswerFilter, BenchmarkIndex, ConfigStats, QualityReport, held_out_ids, load_benchmarks,
                      question_steps, run_steps)
from .stages import FEATURES, STAGES, Stage
from .taxonomy import DisciplineRef

# Bump when a row's columns or how they are derived change, or what unit.json records: every unit is then
# rebuilt (from the cache). 2: files record their Arrow bytes. 3: a text field holding a control character fails
# its attempt (builder/llm/free_text.py), so a row of an older unit may no longer stand.
ROW_FORMAT = 3
UNITS = "units"
UNIT_FILE = "unit.json"
FAILURES_FILE = "failures.jsonl"
# Settings that decide how requests travel, not what they return: left out of the fingerprint.
_ROUTING_KEYS = {"model", "base_urls", "api_key_env", "structured_output", "batch", "batch_fallback",
                 "temperature", "top_p", "max_tokens"}  # the last four enter through each stage's resolved params


@dataclass
class UnitFiles:
    """What a written unit holds (its unit.json): files per config and split, and the figures to merge."""

    discipline_id: str
    fingerprint: str
    complete: bool  # every request answered or failed for good; otherwise the next build runs it again
    depth: int  # stages run: 4 for a full unit
    files: dict[str, dict[str, dict]]  # config -> split -> {"file", "rows", "arrow_bytes", "sha256"}
    stats: dict[str, dict]  # "config" or "config/split" -> ConfigStats raw
    quality: dict  # QualityReport.to_dict()
    requests: dict[str, dict[str, int]]  # stage -> {"succeeded", "failed"} (per request, samples included)
    directory: Path = field(default=None, compare=False)

    def path(self, config: str, split: str) -> Path:
        return self.directory / self.files[config][split]["file"]

    def to_json(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "directory"}


class UnitStore:
    """The units of one run in its work dir: where they live, which are complete, and writing one atomically.
    Benchmarks are read once here, for every unit's decontamination and fingerprint."""

    def __init__(self, run: Run):
        self.run = run
        self.benchmarks = load_benchmarks(run.generation.quality.decontamination)
        self.root = run.work_dir / UNITS
        self.run_fingerprint = _run_fingerprint(run, self.benchmarks)

    def fingerprint(self, discipline: DisciplineRef) -> str:
        entry = json.dumps([self.run_fingerprint, vars(discipline)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(entry.encode()).hexdigest()[:16]

    def find(self, discipline: DisciplineRef, depth: int, complete: bool = True) -> UnitFiles | None:
        """The unit of this discipline and fingerprint that ran at least `depth` stages, if any (and if complete)."""
        directory = self.root / discipline.discipline_id / self.fingerprint(discipline)
        try:
            unit = UnitFiles(**json.loads((directory / UNIT_FILE).read_text()), directory=directory)
        except FileNotFoundError:
            return None
        return unit if (unit.complete or not complete) and unit.depth >= depth else None

    def clean(self) -> None:
        """Staging folders a killed build left behind (the caller holds the work dir's lock)."""
        for staging in self.root.glob(f"*/{_STAGING}*"):
            shutil.rmtree(staging, ignore_errors=True)

    def write(self, discipline: DisciplineRef, result: UnitResult) -> UnitFiles:
        fingerprint = self.fingerprint(discipline)
        home = self.root / discipline.discipline_id
        staging = home / f"{_STAGING}{fingerprint}-{os.getpid()}"
        staging.mkdir(parents=True)
        files = {}
        for config, splits in result.rows.items():
            for split, rows in splits.items():
                if not rows:  # datasets cannot read an empty file back; the unit records 0 rows
                    continue
                name = f"{config}-{split}.parquet"
                table = pa.Table.from_pylist(rows, schema=_ARROW_SCHEMAS[config])
                pq.write_table(table, staging / name)
                data = (staging / name).read_bytes()
                # Arrow bytes: what datasets reads the file into, and push_to_hub reports as a split's num_bytes
                files.setdefault(config, {})[split] = {"file": name, "rows": len(rows), "arrow_bytes": table.nbytes,
                                                       "sha256": hashlib.sha256(data).hexdigest()}
        with open(staging / FAILURES_FILE, "w") as out:
            out.writelines(json.dumps(failure, ensure_ascii=False) + "\n" for failure in result.failures)
        unit = UnitFiles(discipline.discipline_id, fingerprint, result.complete, result.depth, files,
                         {name: stats.to_raw() for name, stats in result.stats().items()},
                         result.quality.to_dict(), result.requests)
        (staging / UNIT_FILE).write_text(json.dumps(unit.to_json(), indent=1, ensure_ascii=False))
        for old in home.iterdir():  # a discipline keeps one unit: the newest
            if old != staging:
                shutil.rmtree(old)
        unit.directory = staging.rename(home / fingerprint)
        return unit


_STAGING = ".staging-"
# datasets builds a Features' Arrow schema anew on every access (~1 ms): a unit writes a file per config.
_ARROW_SCHEMAS = {config: features.arrow_schema for config, features in FEATURES.items()}


def _run_fingerprint(run: Run, benchmarks: list[BenchmarkIndex]) -> str:
    generation = run.generation.model_dump(exclude={"limits", "prices", "discipline_ids", "executor"})
    for name in run.stages:
        generation[name] = {key: value for key, value in generation[name].items() if key not in _ROUTING_KEYS}
    stages = {name: {"model": plan.route.model, "params": plan.params, "prompt": plan.context.prompt.fingerprint,
                     "schema": schema_of(plan.context.output_model)} for name, plan in run.stages.items()}
    decided_by = {"row_format": ROW_FORMAT, "generation": generation, "stages": stages,
                  "benchmarks": [index.fingerprint for index in benchmarks]}
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class UnitResult:
    rows: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # config -> split -> rows
    quality: QualityReport = field(default_factory=QualityReport)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    depth: int = 0
    complete: bool = True
    batched: bool = False  # waits for a Batch API answer: nothing is written, the unit runs again after it

    def stats(self) -> dict[str, ConfigStats]:
        return {(config if split == "train" else f"{config}/{split}"): ConfigStats.of(rows, _texts)
                for config, splits in self.rows.items() for split, rows in splits.items()}


def _texts(row: dict) -> dict:
    """The text columns stats measure; an instruction keeps its question and answer in `messages`."""
    if "messages" in row:
        return {"question": row["messages"][0]["content"], "answer": row["messages"][1]["content"]}
    return row


async def run_unit(run: Run, engine: Engine, discipline: DisciplineRef, depth: int,
                   benchmarks: list[BenchmarkIndex], wait_for_room: Callable[[], Awaitable] | None = None
                   ) -> UnitResult:
    """The discipline's rows of the first `depth` stages, with the quality steps between them; its requests go
    through its own cache file, so whichever process runs the unit is the only one writing it.

    `wait_for_room` is awaited before the questions stage: from there on a unit holds nearly all its rows and
    sends nearly all its requests, so the caller bounds how many units are past it (its subjects and syllabi
    are few rows, and can be ready before there is room)."""
    cache = Cache(unit_cache_path(run.work_dir, discipline.discipline_id), fallback=engine.cache)
    try:
        return await _run_unit(run, engine, cache, discipline, depth, benchmarks, wait_for_room)
    finally:
        cache.commit()  # here, on the loop's thread, where the responses were put
        await asyncio.to_thread(cache.close)  # it syncs the file to disk: not on the thread sending requests


async def _run_unit(run: Run, engine: Engine, cache: Cache, discipline: DisciplineRef, depth: int,
                    benchmarks: list[BenchmarkIndex], wait_for_room) -> UnitResult:
    result = UnitResult(depth=depth)
    discipline_row = vars(discipline)
    result.rows["taxonomy"] = {"train": [{key: discipline_row[key] for key in FEATURES["taxonomy"]}]}
    quality = run.generation.quality
    parents = [discipline_row]
    for stage_class in STAGES[:depth]:
        plan = run.stages[stage_class.name]
        if stage_class.config == "questions" and wait_for_room is not None:
            await wait_for_room()
        rows, failed = await _run_stage(engine, cache, plan, plan.make(), parents, result)
        if result.batched:
            return result
        # The quality steps take tens of milliseconds of CPU or more: never in one piece on the event loop, where they
        # would hold up every other unit's requests meanwhile (each step says how it runs).
        if stage_class.config == "questions":  # dedup and decontaminate before answering: a dropped question costs no answer
            rows = await run_steps(question_steps(quality, benchmarks), rows, result.quality)
        if stage_class.config == "instructions":
            result.rows["instructions"] = await asyncio.to_thread(_instruction_splits, quality, rows, failed,
                                                                  result.quality)
        else:
            result.rows[stage_class.config] = {"train": rows}
        parents = rows
    return result


def _instruction_splits(quality, rows: list[dict], failed: list[tuple[dict, str]], report: QualityReport
                        ) -> dict[str, list[dict]]:
    """The answered questions that pass the answer filters, split into train and the held-out test split."""
    for reason in ("truncated", "empty"):  # answers the engine gave up on
        report.record(reason, [item for item, failure in failed if failure == reason])
    rows = AnswerFilter(quality.answer_filters, answer_of=lambda row: row["messages"][1]["content"])(rows, report)
    test_ids = held_out_ids(rows, per_discipline=quality.test_split.per_discipline)
    return {"train": [row for row in rows if row["question_id"] not in test_ids],
            "test": [row for row in rows if row["question_id"] in test_ids]}


async def _run_stage(engine: Engine, cache: Cache, plan: StagePlan, stage: Stage, parents: list[dict],
                     result: UnitResult) -> tuple[list[dict], list[tuple[dict, str]]]:
    """The stage's rows, and the items that got no valid output with their last failure reason."""
    items = [(item, stage.samples(item)) for item in stage.inputs(parents)]
    context = plan.context

    def requests() -> Iterator[LLMRequest]:  # rendered one at a time, as the engine takes them
        for item, samples in items:
            messages = context.prompt.render(**stage.context(item))
            for sample_index in samples:
                yield LLMRequest(stage.item_id(item), messages, plan.params, context.output_model, sample_index)

    count = sum(len(samples) for _, samples in items)
    results = iter(await engine.map(plan.name, plan.route, requests(), cache, count=count, batch=plan.batch))
    counts = result.requests.setdefault(plan.name, {"succeeded": 0, "failed": 0})
    rows, failed = [], []
    for item, samples in items:
        item_results: list[LLMResult] = [next(results) for _ in samples]
        for sample_index, item_result in zip(samples, item_results):
            counts["succeeded"] += item_result.ok
            if item_result.failure is not None:
                counts["failed"] += 1
                result.failures.append({"stage": plan.name, "item_id": stage.item_id(item), "sample_index": sample_index,
                                        "reason": item_result.failure, "attempts": item_result.attempts,
                                        "last_output": item_result.last_output[:200]})
            result.complete &= not (item_result.skipped or item_result.transient)
            result.batched |= item_result.batched
        values = [item_result.value for item_result in item_results if item_result.ok]
        if values:
            rows.extend(stage.parse(item, values))
        elif item_results[-1].failure:
            failed.append((item, item_results[-1].failure))
    return rows, failed
