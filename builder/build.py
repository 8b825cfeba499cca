"""`glan build`: every config through glan_dataset.Glan, then the published folder and a summary."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import datasets

from glan_dataset import Glan

from . import schemas
from .card import render_card
from .export import write_folder
from .pipeline import Pipeline, RunSettings
from .quality import build_stats
from .workdir import exclusive

STAGE_OF_CONFIG = {"subjects": "subjects", "syllabi": "syllabus", "questions": "questions", "instructions": "answers"}


def build(run: RunSettings, out: Path, configs: list[str], max_failure_rate: float) -> int:
    """Returns the exit code: 0 done, 1 stopped by the budget or too many failures."""
    pipeline = Pipeline.shared(run)
    with exclusive(Path(run.work_dir)):
        print(plan_line(pipeline), file=sys.stderr)
        wanted = schemas.CONFIGS[: max(schemas.CONFIGS.index(c) for c in configs) + 1]
        splits = {}
        for config in wanted:
            builder = Glan(config_name=config, cache_dir=str(Path(run.work_dir) / "datasets"), **asdict(run))
            builder.download_and_prepare(download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD)
            if config in configs:
                splits[config] = {split: _as_dataset(builder, split) for split in builder.info.splits}
        write_folder(out, splits, {**manifest(pipeline, splits), "stats": stats(pipeline, splits)}, render_card)
    print(summary(pipeline, splits), file=sys.stderr)
    return exit_code(pipeline, max_failure_rate)


def _as_dataset(builder: Glan, split: str) -> datasets.Dataset:
    if builder.info.splits[split].num_examples == 0:  # datasets cannot read back an empty split
        return datasets.Dataset.from_dict({name: [] for name in builder.info.features}, features=builder.info.features)
    return builder.as_dataset(split)


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
        "license": "other",
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
        for split, dataset in by_split.items():
            rows = dataset.to_list()
            if config == "instructions":
                rows = [{**row, "question": row["messages"][0]["content"], "answer": row["messages"][1]["content"]}
                        for row in rows]
            tables[config if split == "train" else f"{config}/{split}"] = rows
    return build_stats(tables, pipeline.quality)


def summary(pipeline: Pipeline, splits: dict) -> str:
    lines = [f"{'stage':<12} {'rows':>8} {'requests':>9} {'cache hits':>10} {'tokens in':>10} "
             f"{'tokens out':>10} {'failed':>7} {'cost USD':>9}"]
    for config, stage in STAGE_OF_CONFIG.items():
        usage = pipeline.accounting.stage_total(stage)
        rows = sum(d.num_rows for d in splits.get(config, {}).values())
        lines.append(f"{config:<12} {rows:>8,} {usage.requests:>9,} {usage.cache_hits:>10,} {usage.prompt_tokens:>10,} "
                     f"{usage.completion_tokens:>10,} {usage.failed:>7,} {usage.cost:>9.4f}")
    failures = pipeline.cache.failures()
    if failures:
        lines.append(f"{len(failures)} failures (stage, item, reason, attempts):")
        lines += [f"  {f.stage} {f.item_id} {f.reason} x{f.attempts}" for f in failures[:20]]
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more in {Path(pipeline.run.work_dir) / 'cache.sqlite'} (table failures)")
    if pipeline.engine.stop_reason:
        lines.append(f"stopped early: {pipeline.engine.stop_reason}; the folder holds what was complete.")
    return "\n".join(lines)


def exit_code(pipeline: Pipeline, max_failure_rate: float) -> int:
    total = pipeline.accounting.total()
    done = total.succeeded + total.failed
    if pipeline.engine.stop_reason or (done and total.failed / done > max_failure_rate):
        return 1
    return 0
