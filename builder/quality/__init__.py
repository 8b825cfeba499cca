"""Data quality per discipline: dedup, decontamination, answer filters as steps that count what they drop;
the held-out split; stats that merge across disciplines."""

from .benchmarks import BenchmarkError, load_benchmark, load_benchmarks, shipped_benchmark_names
from .decontaminate import BenchmarkIndex, decontaminate, index_benchmark
from .dedup import Reread, deduplicate
from .filters import ANSWER_DROP_REASONS, answer_drop_reason
from .held_out import cross_discipline_twins, near_twin_figures, remembered_twins, write_near_twin_figures
from .report import QualityReport
from .split import held_out_ids
from .stats import ConfigStats, build_stats, decontamination_stats, held_out_stats, repetition_by_discipline
from .steps import (
    AnswerFilter,
    Decontaminate,
    Deduplicate,
    Kept,
    MinScore,
    QualityStep,
    Rows,
    filter_steps,
    question_steps,
    run_steps,
)

__all__ = [
    "ANSWER_DROP_REASONS",
    "AnswerFilter",
    "BenchmarkError",
    "BenchmarkIndex",
    "ConfigStats",
    "Decontaminate",
    "Deduplicate",
    "Kept",
    "MinScore",
    "QualityReport",
    "QualityStep",
    "Reread",
    "Rows",
    "answer_drop_reason",
    "build_stats",
    "cross_discipline_twins",
    "remembered_twins",
    "decontamination_stats",
    "decontaminate",
    "deduplicate",
    "filter_steps",
    "held_out_ids",
    "held_out_stats",
    "index_benchmark",
    "load_benchmark",
    "load_benchmarks",
    "near_twin_figures",
    "question_steps",
    "repetition_by_discipline",
    "run_steps",
    "shipped_benchmark_names",
    "write_near_twin_figures",
]
