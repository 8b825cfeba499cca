"""`glan build`: every config through glan_dataset.Glan, then the published folder and a summary."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import datasets

from glan_dataset import Glan

from . import schemas
from .publish.card import render_card
from .publish.export import MANIFEST, write_folder
from .pipeline import Pipeline, RunSettings
from .quality import build_stats
from .workdir import exclusive

STAGE_OF_CONFIG = {"subjects": "subjects", "syllabi": "syllabus", "questions": "questions", "instructions": "answers"}


def build(run: RunSettings, out: Path, configs: list[str], max_failure_rate: float | None = None) -> int:
    """Returns the exit code: 0 done, 1 stopped by the budget or too many failures."""
    pipeline = Pipeline.shared(run)
    try:
        with exclusive(Path(run.work_dir)):
            print(plan_line(pipeline), file=sys.stderr)
            splits = _build_configs(run, configs)
            previous = _read_manifest(out)
            write_folder(out, splits, {**manifest(pipeline, splits), "stats": stats(pipeline, splits)}, render_card)
            write_run_report(pipeline)
            warning = unbumped_version_warning(previous, _read_manifest(out))
            if warning:
                print(warning, file=sys.stderr)
        print(summary(pipeline, splits), file=sys.stderr)
        return exit_code(pipeline, pipeline.settings.limits.max_failure_rate if max_failure_rate is None
                         else max_failure_rate)
    finally:
        Pipeline.forget(run)


def _build_configs(run: RunSettings, configs: list[str]) -> dict[str, dict[str, datasets.Dataset]]:
    """Each config through the datasets builder (the one path that defines rows), in stage order."""
    wanted = schemas.CONFIGS[: max(schemas.CONFIGS.index(c) for c in configs) + 1]
    splits = {}
    for config in wanted:
        builder = Glan(config_name=config, cache_dir=str(Path(run.work_dir) / "datasets"), **asdict(run))
        builder.download_and_prepare(download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD)
        # datasets cannot read back an empty split, so one (a stopped run's, say) is left out of the folder.
        non_empty = [split for split, info in builder.info.splits.items() if info.num_examples]
        if config in configs and non_empty:
            splits[config] = {split: builder.as_dataset(split) for split in non_empty}
    return splits


def _read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def unbumped_version_warning(previous: dict | None, current: dict) -> str | None:
    if previous and previous["taxonomy_version"] == current["taxonomy_version"] \
            and previous["checksums"] != current["checksums"]:
        return (f"glan: warning: the data changed but the taxonomy version is still {current['taxonomy_version']}. "
                "Bump `version:` in taxonomy.yaml: `glan push` refuses new content under an existing version.")
    return None


def plan_line(pipeline: Pipeline) -> str:
    settings = pipeline.settings
    disciplines = len(pipeline.disciplines)
    subject_calls = disciplines * settings.subjects.samples
    subjects = subject_calls * (settings.subjects.per_sample.min + settings.subjects.per_sample.max) // 2
    questions = subjects * settings.questions.per_subject
    total = subject_calls + subjects + 2 * questions
    return (f"glan: about to make up to {total:,} requests for {disciplines} disciplines "
            f"(subjects {subject_calls:,}, syllabi ~{subjects:,}, questions ~{questions:,}, answers ~{questions:,}); "
            "cached responses are not requested again.")


def manifest(pipeline: Pipeline, splits: dict) -> dict:
    per_discipline = {d["discipline_id"]: Counter() for d in pipeline.disciplines}
    for config, by_split in splits.items():
        if config == "taxonomy":
            continue
        for dataset in by_split.values():
            for discipline_id in dataset["discipline_id"]:
                per_discipline[discipline_id][config] += 1
    return {
        "taxonomy_version": pipeline.taxonomy.version,
        "license": pipeline.taxonomy.license,
        "language": ["en"],
        "disciplines": [
            {**{key: d[key] for key in ("field", "subfield", "discipline", "discipline_id")},
             "rows": {config: per_discipline[d["discipline_id"]][config] for config in splits if config != "taxonomy"}}
            for d in pipeline.disciplines
        ],
        "stages": {
            stage: {"model": pipeline.route(stage).model, "params": pipeline.params(stage),
                    "prompt_fingerprint": pipeline.prompts[stage].fingerprint}
            for stage in STAGE_OF_CONFIG.values()
        },
    }


def stats(pipeline: Pipeline, splits: dict) -> dict:
    """Counts and lengths per config/split; instructions are read as their question and answer texts."""
    tables = {}
    for config, by_split in splits.items():
        for split in by_split:  # the pipeline's own rows: no need to read the Arrow files back
            rows = pipeline.rows(config)[split]
            if config == "instructions":
                rows = [{**row, "question": row["messages"][0]["content"], "answer": row["messages"][1]["content"]}
                        for row in rows]
            tables[config if split == "train" else f"{config}/{split}"] = rows
    return build_stats(tables, pipeline.quality)


def write_run_report(pipeline: Pipeline) -> None:
    """<work dir>/run_report.json: what this build spent per stage and model, and how hard the endpoints pushed back."""
    engine = pipeline.engine
    report = {
        "usage": [{"stage": stage, "model": model, **asdict(usage)}
                  for (stage, model), usage in pipeline.accounting.by_stage_model.items()],
        "failures": len(pipeline.cache.failures()),
        "lowest_concurrency": engine.lowest_concurrency,
        "retry_after_waits_s": engine.retry_after_waits,
        "stop_reason": engine.stop_reason,
    }
    (Path(pipeline.run.work_dir) / "run_report.json").write_text(json.dumps(report, indent=1))


def summary(pipeline: Pipeline, splits: dict) -> str:
    lines = [f"{'stage':<12} {'rows':>8} {'requests':>9} {'cache hits':>10} {'tokens in':>10} "
             f"{'tokens out':>10} {'failed':>7} {'cost USD':>9}"]
    for config, stage in STAGE_OF_CONFIG.items():
        usage = pipeline.accounting.stage_total(stage)
        rows = sum(d.num_rows for d in splits.get(config, {}).values())
        lines.append(f"{config:<12} {rows:>8,} {usage.requests:>9,} {usage.cache_hits:>10,} {usage.prompt_tokens:>10,} "
                     f"{usage.completion_tokens:>10,} {usage.failed:>7,} {usage.cost:>9.4f}")
    quality = pipeline.quality.to_dict()
    dropped = ", ".join(f"{reason} {entry['total']:,}" for reason, entry in quality["dropped"].items()) or "nothing"
    test_split = splits.get("instructions", {}).get("test")
    lines.append(f"quality: dropped {dropped}; held-out test split {test_split.num_rows if test_split else 0:,} rows "
                 "(details in stats.json)")
    if quality["benchmark_hits"]:
        lines.append("benchmark hits: " + ", ".join(f"{name} {n:,}" for name, n in quality["benchmark_hits"].items()))
    failures = pipeline.cache.failures()
    if failures:
        lines.append(f"{len(failures)} failures (stage, item, reason, attempts):")
        lines += [f"  {f.stage} {f.item_id} {f.reason.splitlines()[0][:160]} x{f.attempts}" for f in failures[:20]]
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more in {Path(pipeline.run.work_dir) / 'cache.sqlite'} (table failures)")
    engine = pipeline.engine
    if engine.retry_after_waits:
        lowest = ", ".join(f"{url} {limit}" for url, limit in engine.lowest_concurrency.items())
        lines.append(f"rate limited: waited Retry-After {len(engine.retry_after_waits)} times; "
                     f"lowest concurrency: {lowest}")
    if pipeline.engine.stop_reason:
        lines.append(f"stopped early: {pipeline.engine.stop_reason}; the folder holds what was complete.")
    return "\n".join(lines)


def exit_code(pipeline: Pipeline, max_failure_rate: float) -> int:
    total = pipeline.accounting.total()
    done = total.succeeded + total.failed
    if pipeline.engine.stop_reason or (done and total.failed / done > max_failure_rate):
        return 1
    return 0
