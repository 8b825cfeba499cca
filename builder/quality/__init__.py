"""Data quality over rows (dicts): dedup, decontamination, the held-out split, answer filters, stats.

Pure functions; the pipeline decides when to call them. `settings` is the `quality:` block of
taxonomy.yaml (a pydantic model or any object with the same attribute names).
"""

from collections.abc import Callable
from operator import itemgetter

from .decontaminate import BenchmarkError, decontaminate, load_benchmark
from .dedup import deduplicate
from .filters import ANSWER_DROP_REASONS, answer_drop_reason, filter_answers
from .report import QualityReport
from .split import held_out_ids
from .stats import build_stats

__all__ = [
    "BenchmarkError",
    "QualityReport",
    "answer_drop_reason",
    "apply_answer_filters",
    "apply_quality",
    "build_stats",
    "decontaminate",
    "deduplicate",
    "filter_answers",
    "held_out_ids",
    "load_benchmark",
]


def apply_quality(question_rows: list[dict], settings) -> tuple[list[dict], QualityReport]:
    """Exact and near dedup within each discipline, then decontamination; returns the kept rows and
    what was dropped.

    Raises BenchmarkError when a named benchmark file cannot be used.
    """
    report = QualityReport()
    dedup_settings = settings.dedup
    # Within each discipline only: a discipline added later must never drop a row of an existing one.
    by_discipline: dict[str, list[dict]] = {}
    for row in question_rows:
        by_discipline.setdefault(row["discipline_id"], []).append(row)
    duplicates = [
        drop
        for rows in by_discipline.values()
        for drop in deduplicate(
            rows,
            exact=dedup_settings.exact,
            near=dedup_settings.near,
            threshold=dedup_settings.threshold,
            num_perm=dedup_settings.num_perm,
            shingle_words=dedup_settings.shingle_words,
        ).dropped
    ]
    for reason, enabled in (("exact", dedup_settings.exact), ("near", dedup_settings.near)):
        if enabled:
            report.record(reason, [drop.row for drop in duplicates if drop.reason == reason])
    duplicate_ids = {drop.row["question_id"] for drop in duplicates}
    kept = [row for row in question_rows if row["question_id"] not in duplicate_ids]
    benchmark_settings = settings.decontamination.benchmarks
    if benchmark_settings:
        benchmarks = [load_benchmark(item.path, item.text_column, item.name) for item in benchmark_settings]
        decontaminated = decontaminate(kept, benchmarks, ngram=settings.decontamination.ngram)
        report.record("contaminated", [drop.row for drop in decontaminated.dropped])
        report.benchmark_hits.update(decontaminated.hits_per_benchmark)
        kept = decontaminated.kept
    return kept, report


def apply_answer_filters(instruction_rows: list[dict], settings, report: QualityReport,
                         answer_of: Callable[[dict], str] = itemgetter("answer")) -> list[dict]:
    """Drop truncated, empty and refusal answers, counting each reason in `report`."""
    filtered = filter_answers(instruction_rows, settings.answer_filters.refusal_patterns, answer_of)
    for reason in ANSWER_DROP_REASONS:
        report.record(reason, [drop.row for drop in filtered.dropped if drop.reason == reason])
    return filtered.kept
