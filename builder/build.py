"""`glan build`: run the discipline units that are missing, then assemble the folder from unit files.

Units run concurrently in one event loop and share each endpoint's limits; builder/admission.py decides
when each may start and go on to its questions, so that memory holds only the rows of the units the
endpoints need to stay full. In Batch API mode the units run in rounds: each round runs every unfinished
unit until it needs answers a batch must give, the collected lines are submitted and waited for, and the
next round resumes the units from the cache.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import preflight
from .admission import Admission
from .config.resolve import Run, resolve
from .config.run import RunSettings
from .errors import UserError
from .llm import loop
from .llm.accounting import Accounting
from .llm.cache import Cache, shared_cache_path
from .llm.engine import Engine
from .progress import Progress
from .project import release_inputs, reproduction
from .publish.card import check_template, render_card
from .publish.export import MANIFEST, incomplete_folder, read_manifest, write_folder
from .publish.template import DEFAULT_TEMPLATE
from .quality import BenchmarkIndex, ConfigStats, QualityReport, build_stats
from .stages import CONFIGS, STAGES
from .taxonomy import DisciplineRef
from .unit import FAILURES_FILE, UnitFiles, UnitResult, UnitStore, run_unit
from .workdir import exclusive, folder_held


@dataclass
class EngineFigures:
    """How the endpoints took the build, for its summary and run report: from its engine, or on Ray merged from
    the workers' engines and the cluster-wide leases."""

    lowest_concurrency: dict[str, int]
    retry_after_waits: list[float]
    stop_reason: str | None
    workers: dict[str, int] = field(default_factory=dict)  # on Ray: units run per worker (node address:pid)

    @classmethod
    def of(cls, engine: Engine) -> EngineFigures:
        return cls(engine.lowest_concurrency, engine.retry_after_waits, engine.stop_reason)


@dataclass
class Units:
    """The units of one build, in taxonomy order, and what running the missing ones cost."""

    run: Run
    files: list[UnitFiles]
    accounting: Accounting
    engine: EngineFigures
    built: int  # units run by this build (the others were complete already)


def depth_of(configs: list[str]) -> int:
    """How many stages the deepest wanted config needs."""
    return max(CONFIGS.index(config) for config in configs)


def ensure_units(store: UnitStore, depth: int, *, progress: bool = False) -> Units:
    """Every selected discipline's unit of at least `depth` stages, running the ones that are missing."""
    run = store.run
    store.clean()
    found = {ref.discipline_id: store.find(ref, depth) for ref in run.disciplines}
    missing = [ref for ref in run.disciplines if found[ref.discipline_id] is None]
    if run.executor == "ray":
        from .cluster import run_on_ray

        accounting, figures = run_on_ray(store, missing, depth, found, progress=progress)
    else:
        accounting, figures = _run_here(store, missing, depth, found, progress)
    return Units(run, [found[ref.discipline_id] for ref in run.disciplines], accounting, figures, len(missing))


def _run_here(store: UnitStore, missing: list[DisciplineRef], depth: int, found: dict, progress: bool
              ) -> tuple[Accounting, EngineFigures]:
    run = store.run
    cache = Cache(shared_cache_path(run.work_dir))
    try:
        accounting = Accounting(run.prices, run.budget)
        engine = Engine(cache, run.limits, accounting)
        if any(plan.batch for plan in run.stages.values()):
            # Imported here: it imports openai, a second of CPU that a build without batches skips.
            from .llm.batch import BatchRunner

            engine.batches = BatchRunner(engine, run.generation.limits.batch_poll_s,
                                         {name: plan.batch_fallback for name, plan in run.stages.items()})

        async def write(ref: DisciplineRef, result: UnitResult) -> None:
            # Parquet, checksums and stats: in a thread, so the other units' requests go on meanwhile.
            found[ref.discipline_id] = await asyncio.to_thread(store.write, ref, result)

        if missing:
            loop.run(preflight.check_reachable({endpoint for plan in run.stages.values()
                                                for endpoint in plan.route.endpoints}))
        loop.run(drive_units(run, engine, missing, depth, store.benchmarks, write,
                             Progress(len(missing), accounting, progress)))
    finally:
        cache.close()
    return accounting, EngineFigures.of(engine)


async def drive_units(run: Run, engine: Engine, disciplines: list[DisciplineRef], depth: int,
                      benchmarks: list[BenchmarkIndex], on_result, progress: Progress) -> None:
    """Run the units of `disciplines`, handing each finished one to `await on_result(ref, result)`; in Batch API
    rounds when some stage goes through batches."""
    waiting = list(disciplines)
    async with engine:
        ticker = asyncio.ensure_future(progress.ticking())
        try:
            while waiting:
                batched = await _run_round(run, engine, waiting, depth, benchmarks, on_result, progress)
                if not batched:
                    break
                await asyncio.to_thread(engine.batches.submit_and_wait)
                waiting = batched
        finally:
            ticker.cancel()
            progress.close()


async def _run_round(run, engine, disciplines, depth, benchmarks, on_result, progress) -> list[DisciplineRef]:
    """One pass over `disciplines`, as many at once as `Admission` lets; returns those that wait for a batch."""
    admission, batched = Admission(engine), []

    async def one(ref: DisciplineRef) -> None:
        async with admission.unit() as wait_for_room:
            result = await run_unit(run, engine, ref, depth, benchmarks, wait_for_room)
        if result.batched:
            batched.append(ref)
        else:
            await on_result(ref, result)
            progress.unit_done()

    units = [asyncio.ensure_future(one(ref)) for ref in disciplines]  # each waits for its turn to start
    try:
        await asyncio.gather(*units)
    finally:
        for unit in units:
            unit.cancel()
        await asyncio.gather(*units, return_exceptions=True)
    return batched


def build(settings: RunSettings, out: Path, configs: list[str], max_failure_rate: float | None = None) -> int:
    """Returns the exit code: 0 done, 1 stopped by the budget or too many failures.

    The folder at `out` is replaced only by a complete build; a build that stops early writes what was complete
    to `<out>.incomplete` beside it and leaves `out` as it was."""
    run = resolve(settings)
    out = Path(out)
    preflight.check_prices(run)
    preflight.check_templates(run)
    check_card_template(run, configs)
    preflight.check_paths(out, run)
    rate = run.generation.limits.max_failure_rate if max_failure_rate is None else max_failure_rate
    store = UnitStore(run)
    with folder_held(out, "glan build"), exclusive(run.work_dir):
        print(plan_line(run), file=sys.stderr)
        try:
            units = ensure_units(store, depth_of(configs), progress=settings.progress)
        except (sqlite3.OperationalError, OSError) as error:  # a full or read-only disk under the work dir
            raise OutputError(f"{getattr(error, 'filename', None) or run.work_dir}: cannot write the work dir "
                              f"({getattr(error, 'strerror', None) or error}). Free some space or pass another "
                              "--work-dir; every response received so far is cached.") from None
        except KeyboardInterrupt:
            written = [store.find(ref, depth_of(configs), complete=False) for ref in run.disciplines]
            units = Units(run, [unit for unit in written if unit], Accounting(run.prices), None, 0)
            if units.files:
                _write(units, configs, incomplete_folder(out))
                print(f"glan: what was complete is in {incomplete_folder(out)}; {out} was left as it was.",
                      file=sys.stderr)
            raise
        stopped = stop_reason(units, rate)
        previous = read_manifest(out)
        stats = _write(units, configs, incomplete_folder(out) if stopped else out)
        if not stopped and (warning := unbumped_version_warning(previous, read_manifest(out))):
            print(warning, file=sys.stderr)
        write_run_report(units)
    print(summary(units, configs, stats), file=sys.stderr)
    if stopped:
        print(f"glan: the build is incomplete: {stopped}. What was complete is in {incomplete_folder(out)}; {out} was "
              "left as it was. Run the same command to go on: nothing received is paid twice.", file=sys.stderr)
        return 1
    if (incomplete_folder(out) / MANIFEST).is_file():  # superseded; only ever a folder glan wrote
        shutil.rmtree(incomplete_folder(out), ignore_errors=True)
    return 0


def check_card_template(run: Run, configs: list[str]) -> None:
    """The card template rendered with the manifest of this build before it made any row, before any request."""
    template = run.taxonomy.card.template
    path = Path(run.settings.taxonomy).parent / template if template else DEFAULT_TEMPLATE
    check_template(path, {**manifest(run, [], configs), "configs": {}, "checksums": {}})


def _write(units: Units, configs: list[str], folder: Path) -> dict:
    stats = merged_stats(units.files, configs)
    try:
        run = units.run
        write_folder(folder, units.files, configs, {**manifest(run, units.files, configs), "stats": stats}, render_card,
                     release_inputs(run.settings.taxonomy, run.settings.prompts_dir, run.taxonomy.card.template))
    except OSError as error:
        raise OutputError(f"{error.filename or folder}: cannot write the dataset folder ({error.strerror or error}). "
                          f"Free some space or pass another --out; every response is cached, so running the same "
                          f"command again costs no request.") from None
    return stats


class OutputError(UserError):
    """The folder could not be written (a full or read-only disk); the message says where and what to do."""


def unbumped_version_warning(previous: dict | None, current: dict) -> str | None:
    if previous and previous["taxonomy_version"] == current["taxonomy_version"] \
            and previous["checksums"] != current["checksums"]:
        return (f"glan: warning: the data changed but the taxonomy version is still {current['taxonomy_version']}. "
                "Bump `version:` in taxonomy.yaml: `glan push` refuses new content under an existing version.")
    return None


def plan_line(run: Run) -> str:
    settings = run.generation
    disciplines = len(run.disciplines)
    subject_calls = disciplines * settings.subjects.samples
    subjects = subject_calls * (settings.subjects.per_sample.min + settings.subjects.per_sample.max) // 2
    questions = subjects * settings.questions.per_subject
    total = subject_calls + subjects + 2 * questions
    return (f"glan: about to make up to {total:,} requests for {disciplines} disciplines "
            f"(subjects {subject_calls:,}, syllabi ~{subjects:,}, questions ~{questions:,}, answers ~{questions:,}); "
            "cached responses are not requested again.")


def manifest(run: Run, units: list[UnitFiles], configs: list[str]) -> dict:
    return {
        "taxonomy_version": run.taxonomy.version,
        "license": run.taxonomy.license,
        "card": run.taxonomy.card.model_dump(),
        "reproduce": reproduction(run.settings, configs, run.generation.seed),
        "failures": {stage.name: sum(unit.requests.get(stage.name, {}).get("failed", 0) for unit in units)
                     for stage in STAGES},
        "disciplines": [
            {**{key: getattr(ref, key) for key in ("field", "subfield", "discipline", "discipline_id")},
             "rows": {config: sum(split["rows"] for split in unit.files.get(config, {}).values())
                      for config in CONFIGS[1:unit.depth + 1]}}
            for ref, unit in zip(run.disciplines, units)
        ],
        "stages": {name: {"model": plan.route.model, "params": plan.params,
                          "prompt_fingerprint": plan.context.prompt.fingerprint}
                   for name, plan in run.stages.items()},
    }


def merged_stats(units: list[UnitFiles], configs: list[str]) -> dict:
    """stats.json: per config and split, and the quality counts, merged from the units' own figures."""
    tables: dict[str, ConfigStats] = {}
    quality = QualityReport()
    for unit in units:
        for name, raw in unit.stats.items():
            if name.split("/")[0] in configs:
                tables.setdefault(name, ConfigStats()).merge(ConfigStats.from_raw(raw))
        quality.merge(QualityReport.from_dict(unit.quality))
    return build_stats(dict(sorted(tables.items(), key=lambda item: CONFIGS.index(item[0].split("/")[0]))), quality)


def write_run_report(units: Units) -> None:
    """<work dir>/run_report.json: what this build spent per stage and model, and how hard the endpoints pushed back."""
    engine = units.engine
    report = {
        "usage": [{"stage": stage, "model": model, **asdict(usage)}
                  for (stage, model), usage in units.accounting.by_stage_model.items()],
        "failures": sum(counts["failed"] for unit in units.files for counts in unit.requests.values()),
        "lowest_concurrency": engine.lowest_concurrency,
        "retry_after_waits_s": engine.retry_after_waits,
        "stop_reason": engine.stop_reason,
        **({"ray_workers": engine.workers} if engine.workers else {}),
    }
    (units.run.work_dir / "run_report.json").write_text(json.dumps(report, indent=1))


def summary(units: Units, configs: list[str], stats: dict) -> str:
    lines = [f"{'stage':<12} {'rows':>8} {'requests':>9} {'cache hits':>10} {'tokens in':>10} "
             f"{'tokens out':>10} {'failed':>7} {'cost USD':>9}"]
    for stage in STAGES:
        usage = units.accounting.stage_total(stage.name)
        rows = sum(split["rows"] for unit in units.files for split in unit.files.get(stage.config, {}).values())
        failed = sum(unit.requests.get(stage.name, {}).get("failed", 0) for unit in units.files)
        lines.append(f"{stage.config:<12} {rows:>8,} {usage.requests:>9,} {usage.cache_hits:>10,} "
                     f"{usage.prompt_tokens:>10,} {usage.completion_tokens:>10,} {failed:>7,} {usage.cost:>9.4f}")
    skipped = len(units.files) - units.built
    if skipped:
        lines.append(f"{skipped} of {len(units.files)} disciplines were already built with these settings: not run again.")
    quality = stats["quality"]
    dropped = ", ".join(f"{reason} {entry['total']:,}" for reason, entry in quality["dropped"].items()) or "nothing"
    test_rows = stats["configs"].get("instructions/test", {}).get("rows", 0)
    lines.append(f"quality: dropped {dropped}; held-out test split {test_rows:,} rows (details in stats.json)")
    if quality["benchmark_hits"]:
        lines.append("benchmark hits: " + ", ".join(f"{name} {n:,}" for name, n in quality["benchmark_hits"].items()))
    lines += _failure_lines(units.files)
    engine = units.engine
    if engine.workers:
        lines.append(f"ran on Ray: {len(engine.workers)} workers ran {sum(engine.workers.values())} units "
                     f"({', '.join(f'{name} {count}' for name, count in engine.workers.items())})")
    if engine.retry_after_waits:
        lowest = ", ".join(f"{url} {limit}" for url, limit in engine.lowest_concurrency.items())
        lines.append(f"rate limited: waited Retry-After {len(engine.retry_after_waits)} times; "
                     f"lowest concurrency: {lowest}")
    if engine.stop_reason:
        lines.append(f"stopped early: {engine.stop_reason}.")
    return "\n".join(lines)


def _failure_lines(units: list[UnitFiles], shown: int = 20) -> list[str]:
    with_failures = [unit for unit in units if any(counts["failed"] for counts in unit.requests.values())]
    total = sum(counts["failed"] for unit in with_failures for counts in unit.requests.values())
    if not total:
        return []
    lines = [f"{total} failures (stage, item, reason, attempts):"]
    for unit in with_failures:
        for line in (unit.directory / FAILURES_FILE).read_text().splitlines():
            if len(lines) > shown:
                break
            failure = json.loads(line)
            lines.append(f"  {failure['stage']} {failure['item_id']} {failure['reason'].splitlines()[0][:160]} "
                         f"x{failure['attempts']}")
    if total > shown:
        lines.append(f"  ... and {total - shown} more in {units[0].directory.parent.parent}/*/*/{FAILURES_FILE}")
    return lines


def stop_reason(units: Units, max_failure_rate: float) -> str | None:
    """Why the build is not complete: a budget, units left incomplete, or more failed requests than allowed."""
    if units.engine.stop_reason:
        return units.engine.stop_reason
    incomplete = [unit.discipline_id for unit in units.files if not unit.complete]
    if incomplete:
        return (f"{len(incomplete)} of {len(units.files)} disciplines have requests the endpoint failed after every "
                f"retry ({', '.join(incomplete[:3])}{', ...' if len(incomplete) > 3 else ''})")
    succeeded = sum(counts["succeeded"] for unit in units.files for counts in unit.requests.values())
    failed = sum(counts["failed"] for unit in units.files for counts in unit.requests.values())
    if failed and failed / (succeeded + failed) > max_failure_rate:
        return (f"{failed:,} of {succeeded + failed:,} requests failed ({failed / (succeeded + failed):.1%}), more "
                f"than --max-failure-rate {max_failure_rate:g} allows (their reasons are listed above)")
    return None
