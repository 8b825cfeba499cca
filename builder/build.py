"""`glan build`: run the discipline units that are missing on the run's executor (builder/execute/), then
assemble the folder from unit files."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import preflight
from .errors import UserError
from .execute.base import EngineFigures, Executor
from .execute.local import LocalExecutor
from .llm.accounting import Accounting, Usage
from .plan import Run
from .project import release_inputs
from .publish.card import check_card_template, render_card
from .publish.export import incomplete_folder, write_folder
from .publish.manifest import MANIFEST, JudgeEntry, Manifest, StageEntry, TokenEntry, read_manifest
from .quality import (
    BenchmarkIndex,
    ConfigStats,
    QualityReport,
    build_stats,
    decontamination_stats,
    held_out_stats,
    remembered_twins,
    repetition_by_discipline,
    shipped_benchmark_names,
)
from .stages import CONFIGS, DEFAULT_CONFIG, Judge, depth_of, label
from .unit.store import FAILURES_FILE, UnitFiles, UnitStore, request_outcomes
from .wording import counted
from .workdir import exclusive, folder_held

HELD_OUT_MEMO = "held_out.json"  # the last build's cross-discipline twins (builder/quality/held_out.py)
log = logging.getLogger("glan")


@dataclass
class Units:
    """The units of one build, in taxonomy order, and what running the missing ones cost."""

    run: Run
    files: list[UnitFiles]
    accounting: Accounting
    engine: EngineFigures
    built: int  # units run by this build (the others were complete already)
    benchmarks: list[BenchmarkIndex] = field(default_factory=list)  # what their rows were decontaminated against

    @functools.cached_property
    def outcomes(self) -> dict[str, dict[str, int]]:
        """Per stage, the units' requests that succeeded and failed."""
        return request_outcomes(self.files)

    def requests(self, outcome: str) -> int:
        """The units' requests of every stage that had `outcome` ("succeeded" or "failed")."""
        return sum(counts[outcome] for counts in self.outcomes.values())


def ensure_units(run: Run, store: UnitStore, depth: int, *, progress: bool = False) -> Units:
    """Every selected discipline's unit of at least `depth` stages, running the ones that are missing on the run's
    executor."""
    store.clean()
    found = {ref.discipline_id: unit for ref in run.disciplines if (unit := store.find(ref, depth)) is not None}
    missing = [ref for ref in run.disciplines if ref.discipline_id not in found]
    log.info(plan_line(run, len(missing)))
    executed = executor_for(run, store, progress).execute(missing, depth)
    found.update({unit.discipline_id: unit for unit in executed.units})
    return Units(
        run,
        [found[ref.discipline_id] for ref in run.disciplines],
        executed.accounting,
        executed.figures,
        len(missing),
        store.benchmarks,
    )


def executor_for(run: Run, store: UnitStore, progress: bool) -> Executor:
    """The executor the plan names. A new one is a sibling module of builder/execute/ and a line here."""
    if run.executor == "ray":
        from .execute.ray.executor import RayExecutor  # Ray is an optional extra: imported only when asked for

        return RayExecutor(run, store, progress)
    return LocalExecutor(run, store, progress)


@dataclass
class BuildResult:
    """What a build made and spent. A build that stopped early (a budget, too many failures) is not complete: its
    `folder` is `<out>.incomplete`, and `stop_reason` says why."""

    folder: Path  # the dataset folder written, absolute
    complete: bool
    rows: dict[str, dict[str, int]]  # config -> split -> rows written
    usage: dict[str, Usage]  # stage -> requests, cache hits, tokens and cost of this build
    cost: float  # USD this build spent (cached responses cost nothing again)
    failures: int  # requests that failed after every retry
    stop_reason: str | None
    disciplines: int
    disciplines_run: int  # units this build ran (the others were complete already)
    dropped: dict[str, int]  # rows the quality steps dropped, per reason

    @property
    def pairs(self) -> dict[str, int]:
        """Rows per split of the instructions config: the pairs trainers load."""
        return self.rows.get(DEFAULT_CONFIG, {})

    def to_dict(self) -> dict:
        """The result as JSON-able data."""
        return {**asdict(self), "folder": str(self.folder)}


def build(run: Run, out: Path, configs: list[str], benchmarks: list[BenchmarkIndex] | None = None) -> BuildResult:
    """Runs the missing units and writes the folder; `complete` is False when the budget or too many failures
    stopped it. `benchmarks`: the run's, when the caller has read them already (preflight.check_benchmarks).

    The folder at `out` is replaced only by a complete build; a build that stops early writes what was complete
    to `<out>.incomplete` beside it and leaves `out` as it was."""
    out = Path(out)
    preflight.check_prices(run)
    preflight.check_templates(run)
    check_card_template(run, configs)
    preflight.check_paths(out, run)
    store = UnitStore(run, preflight.check_benchmarks(run) if benchmarks is None else benchmarks)
    with folder_held(out, "glan build"), exclusive(run.work_dir):
        try:
            units = ensure_units(run, store, depth_of(configs), progress=run.settings.progress)
        except (sqlite3.OperationalError, OSError) as error:  # a full or read-only disk under the work dir
            raise OutputError(
                f"{getattr(error, 'filename', None) or run.work_dir}: cannot write the work dir "
                f"({getattr(error, 'strerror', None) or error}). Free some space or pass another "
                "--work-dir; every response received so far is cached."
            ) from None
        except KeyboardInterrupt:
            written = [store.find(ref, depth_of(configs), complete=False) for ref in run.disciplines]
            units = Units(
                run,
                [unit for unit in written if unit],
                Accounting(run.prices),
                EngineFigures({}, [], None),
                0,
                store.benchmarks,
            )
            if units.files:
                _write(units, configs, incomplete_folder(out))
                log.warning(f"glan: what was complete is in {incomplete_folder(out)}; {out} was left as it was.")
            raise
        stopped = stop_reason(units, run.limits.max_failure_rate)
        previous = read_manifest(out)
        stats = _write(units, configs, incomplete_folder(out) if stopped else out)
        if not stopped and (warning := unbumped_version_warning(previous, read_manifest(out))):
            log.warning(warning)
        write_run_report(units)
        rows = rows_written(units.files)
        result = BuildResult(
            (incomplete_folder(out) if stopped else out).absolute(),
            not stopped,
            {config: rows.get(config, {}) for config in configs},
            {stage.name: units.accounting.stage_total(stage.name) for stage in units.run.chain()},
            units.accounting.total().cost,
            units.requests("failed"),
            stopped,
            len(units.files),
            units.built,
            {reason: entry["total"] for reason, entry in stats["quality"]["dropped"].items()},
        )
        log.info(summary(units, result, rows, stats))
        if stopped:
            log.warning(
                f"glan: the build is incomplete: {stopped}. What was complete is in {incomplete_folder(out)}; {out} "
                "was left as it was. Run the same command to go on: nothing received is paid twice."
            )
        # Superseded; only ever a folder glan wrote. Under the folder's lock: a build started meanwhile may be
        # writing a new one.
        elif (incomplete_folder(out) / MANIFEST).is_file():
            shutil.rmtree(incomplete_folder(out), ignore_errors=True)
    return result


def rows_written(units: list[UnitFiles]) -> dict[str, dict[str, int]]:
    """config -> split (in order) -> the rows the units wrote."""
    rows: dict[str, dict[str, int]] = {}
    for unit in units:
        for config, splits in unit.files.items():
            for split, entry in splits.items():
                rows.setdefault(config, {})[split] = rows.get(config, {}).get(split, 0) + entry["rows"]
    return {config: dict(sorted(splits.items())) for config, splits in rows.items()}


def _write(units: Units, configs: list[str], folder: Path) -> dict:
    stats = merged_stats(units.files, configs, units.run, units.benchmarks)
    try:
        run = units.run
        write_folder(
            folder,
            units.files,
            configs,
            Manifest.of(run, units.files, configs, stats, judge_entry(units, configs)),
            render_card,
            release_inputs(run.settings.taxonomy, run.prompts_dir, run.taxonomy.card.template),
        )
    except OSError as error:
        raise OutputError(
            f"{error.filename or folder}: cannot write the dataset folder ({error.strerror or error}). "
            f"Free some space or pass another --out; every response is cached, so running the same "
            f"command again costs no request."
        ) from None
    return stats


def judge_entry(units: Units, configs: list[str]) -> JudgeEntry | None:
    """What the judge cost the release, when it ran: its requests and the tokens its responses took, as the units
    recorded them (retries included, Batch API answers too), priced at the run's prices."""
    run = units.run
    plan = run.stages.get(Judge.name)
    if plan is None or Judge.config not in configs:
        return None
    tokens = StageEntry.tokens_of(Judge.name, units.files) or TokenEntry(prompt=0, cached=0, completion=0)
    outcomes = units.outcomes[Judge.name]
    cost = Accounting(run.prices).cost(
        plan.route.model, tokens.prompt, tokens.completion, tokens.cached, batch=plan.batch
    )
    return JudgeEntry(
        model=plan.route.model,
        requests=outcomes["succeeded"] + outcomes["failed"],
        failed=outcomes["failed"],
        prompt_tokens=tokens.prompt,
        completion_tokens=tokens.completion,
        cost=round(cost, 6),
        min_score=run.generation.quality.min_score,
    )


class OutputError(UserError):
    """The folder could not be written (a full or read-only disk); the message says where and what to do."""


def unbumped_version_warning(previous: Manifest | None, current: Manifest | None) -> str | None:
    if (
        previous
        and current
        and previous.taxonomy_version == current.taxonomy_version
        and previous.checksums != current.checksums
    ):
        return (
            f"glan: warning: the data changed but the taxonomy version is still {current.taxonomy_version}. "
            "Bump `version:` in taxonomy.yaml: `glan push` refuses new content under an existing version."
        )
    return None


def plan_line(run: Run, missing: int) -> str:
    """How many requests the build may make, per config, by the settings (the first stage's count is exact), for the
    `missing` disciplines: those whose units are complete make none. Counted without opening a cache, so that a
    rebuild that changes nothing stays quick."""
    total = len(run.disciplines)
    if not missing:
        built = "the discipline is" if total == 1 else f"all {total:,} disciplines are"
        return f"glan: nothing to request: {built} built already with these settings."
    share = missing / total  # every discipline expects as many requests
    requests = {
        label(stage): count * share
        for stage, count in zip(run.chain(), run.expected_requests(whole=True).values(), strict=True)
    }
    shown = [f"{config} {'~' if index else ''}{count:,.0f}" for index, (config, count) in enumerate(requests.items())]
    return (
        f"glan: about to make up to {sum(requests.values()):,.0f} requests for "
        f"{f'{missing:,} of ' if missing < total else ''}{counted(total, 'discipline')}"
        f"{' not built yet' if missing < total else ''} ({', '.join(shown)}); cached responses are not requested again."
    )


def merged_stats(units: list[UnitFiles], configs: list[str], run: Run, benchmarks: list[BenchmarkIndex]) -> dict:
    """stats.json: per config and split, and the quality counts, merged from the units' own figures; the
    repetition of each discipline's texts in the deepest config written (every split); what decontamination
    checked; and the held-out split's near-twins in other disciplines' train splits."""
    tables: dict[str, ConfigStats] = {}
    quality = QualityReport()
    deepest = max(configs, key=CONFIGS.index)
    disciplines: dict[str, ConfigStats] = {}
    for unit in units:
        for name, raw in unit.stats.items():
            config = name.split("/")[0]
            if config in configs:
                unit_stats = ConfigStats.from_raw(raw)
                tables.setdefault(name, ConfigStats()).merge(unit_stats)
                if config == deepest:
                    disciplines.setdefault(unit.discipline_id, ConfigStats()).merge(unit_stats)
        quality.merge(QualityReport.from_dict(unit.quality))
    settings = run.generation.quality
    stats = build_stats(
        dict(sorted(tables.items(), key=lambda item: CONFIGS.index(item[0].split("/")[0]))),
        quality,
        repetition_by_discipline(disciplines, settings.repetition.flag_opening_share),
    )
    stats["decontamination"] = decontamination_stats(
        settings.decontamination, benchmarks, quality, shipped_benchmark_names()
    )
    if DEFAULT_CONFIG in configs:
        figures = {unit.discipline_id: (unit, path) for unit in units if (path := unit.near_twins)}
        twins = remembered_twins(
            [(discipline_id, path) for discipline_id, (_, path) in figures.items()],
            settings.dedup.threshold,
            run.work_dir / HELD_OUT_MEMO,
        )
        test_questions = {
            discipline_id: unit.files.get(DEFAULT_CONFIG, {}).get("test", {}).get("rows", 0)
            for discipline_id, (unit, _) in sorted(figures.items())
        }
        stats["held_out"] = held_out_stats(test_questions, twins)
    return stats


def write_run_report(units: Units) -> None:
    """<work dir>/run_report.json: what this build spent per stage and model, and how hard the endpoints pushed back."""
    engine = units.engine
    report = {
        "usage": [
            {"stage": stage, "model": model, **asdict(usage)}
            for (stage, model), usage in units.accounting.by_stage_model.items()
        ],
        "failures": units.requests("failed"),
        "lowest_concurrency": engine.lowest_concurrency,
        "retry_after_waits_s": engine.retry_after_waits,
        "stop_reason": engine.stop_reason,
        **({"ray_workers": engine.workers} if engine.workers else {}),
    }
    (units.run.work_dir / "run_report.json").write_text(json.dumps(report, indent=1))


def summary(units: Units, result: BuildResult, rows: dict[str, dict[str, int]], stats: dict) -> str:
    """The table the build ends with: `result`'s figures per stage (`rows` of every config the units wrote, which
    a build of fewer configs also shows), the quality counts, the failures, and where the folder went."""
    lines = [
        f"{'stage':<12} {'rows':>8} {'requests':>9} {'cache hits':>10} {'tokens in':>10} {'cached in':>10} "
        f"{'tokens out':>10} {'failed':>7} {'cost USD':>9}"
    ]
    for stage in units.run.chain():
        usage = result.usage[stage.name]
        failed = units.outcomes[stage.name]["failed"]
        lines.append(
            f"{label(stage):<12} {sum(rows.get(stage.config, {}).values()):>8,} {usage.requests:>9,} "
            f"{usage.cache_hits:>10,} {usage.prompt_tokens:>10,} {usage.cached_tokens:>10,} "
            f"{usage.completion_tokens:>10,} {failed:>7,} {usage.cost:>9.4f}"
        )
    skipped = result.disciplines - result.disciplines_run
    if skipped:
        lines.append(
            f"{skipped} of {counted(result.disciplines, 'discipline')} {'was' if skipped == 1 else 'were'} already "
            "built with these settings: not run again."
        )
    quality = stats["quality"]
    dropped = ", ".join(f"{reason} {count:,}" for reason, count in result.dropped.items()) or "nothing"
    test_rows = rows.get(DEFAULT_CONFIG, {}).get("test", 0)
    lines.append(f"quality: dropped {dropped}; held-out test split {test_rows:,} rows (details in stats.json)")
    if quality["benchmark_hits"]:
        hits = quality["benchmark_hits"]
        shown = ", ".join(f"{name} {sides['question']:,}/{sides['answer']:,}" for name, sides in hits.items())
        lines.append(f"benchmark hits (question/answer): {shown}")
    lines += _failure_lines(units)
    engine = units.engine
    if engine.workers:
        lines.append(
            f"ran on Ray: {len(engine.workers)} workers ran {sum(engine.workers.values())} units "
            f"({', '.join(f'{name} {count}' for name, count in engine.workers.items())})"
        )
    if engine.retry_after_waits:
        lowest = ", ".join(f"{url} {limit}" for url, limit in engine.lowest_concurrency.items())
        lines.append(
            f"rate limited: waited Retry-After {len(engine.retry_after_waits)} times; lowest concurrency: {lowest}"
        )
    if engine.stop_reason:
        lines.append(f"stopped early: {engine.stop_reason}.")
    lines.append(f"the dataset folder: {result.folder}")
    return "\n".join(lines)


def _failure_lines(units: Units, shown: int = 20) -> list[str]:
    with_failures = [unit for unit in units.files if any(counts["failed"] for counts in unit.requests.values())]
    total = units.requests("failed")
    if not total:
        return []
    lines = [f"{counted(total, 'failure')} (stage, item, reason, attempts):"]
    # The first `shown` lines, read no further: with an endpoint down every unit has a failures file.
    failures = (line for unit in with_failures for line in _lines_of(unit.directory / FAILURES_FILE))
    for line in itertools.islice(failures, shown):
        failure = json.loads(line)
        reason = failure["reason"].splitlines()[0][:160]
        lines.append(f"  {failure['stage']} {failure['item_id']} {reason} x{failure['attempts']}")
    if total > shown:
        lines.append(f"  ... and {total - shown} more in {units.files[0].directory.parent.parent}/*/*/{FAILURES_FILE}")
    return lines


def _lines_of(path: Path) -> Iterator[str]:
    with path.open() as lines:
        yield from lines


def stop_reason(units: Units, max_failure_rate: float) -> str | None:
    """Why the build is not complete: a budget, units left incomplete, or more failed requests than allowed."""
    if units.engine.stop_reason:
        return units.engine.stop_reason
    incomplete = [unit.discipline_id for unit in units.files if not unit.complete]
    if incomplete:
        return (
            f"{len(incomplete)} of {counted(len(units.files), 'discipline')} "
            f"{'has' if len(incomplete) == 1 else 'have'} requests the endpoint failed after every "
            f"retry ({', '.join(incomplete[:3])}{', ...' if len(incomplete) > 3 else ''})"
        )
    succeeded, failed = units.requests("succeeded"), units.requests("failed")
    if failed and failed / (succeeded + failed) > max_failure_rate:
        return (
            f"{failed:,} of {succeeded + failed:,} requests failed ({failed / (succeeded + failed):.1%}), more "
            f"than --max-failure-rate {max_failure_rate:g} allows (their reasons are listed above)"
        )
    return None
