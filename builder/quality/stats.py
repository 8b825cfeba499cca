"""Counts and length distributions per config: what a trainer checks before trusting the data.

Each unit keeps them in a form that merges exactly (counters, and word lengths as length -> count), so a
build's stats.json is merged from per-discipline figures without reading a row back.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config.settings import Decontamination
from .decontaminate import SIDES, BenchmarkIndex
from .repetition import NGRAM_ROWS, Repetition, opening
from .report import QualityReport

# Lower edges of the word-count histogram; the last bin is open. Fixed so that versions compare.
WORD_BIN_EDGES = (0, 10, 20, 50, 100, 200, 500, 1000)
# Row keys counted when a config's rows carry them, and the name each count gets.
GROUPINGS = {"discipline_id": "by_discipline", "level": "by_level", "strategy": "by_strategy", "score": "by_score"}
# Text columns whose word counts are summarized when a config's rows carry them.
TEXT_COLUMNS = ("question", "answer")


@dataclass
class ConfigStats:
    rows: int = 0
    groupings: dict[str, Counter] = field(default_factory=dict)  # row key -> value -> rows
    word_lengths: dict[str, Counter] = field(default_factory=dict)  # text column -> words -> rows
    repetition: dict[str, Repetition] = field(default_factory=dict)  # text column -> openings, distinct n-grams

    @classmethod
    def of(cls, rows: Iterable[dict], texts=lambda row: row) -> ConfigStats:
        """`texts(row)` gives the row's text columns by name (instructions keep theirs in `messages`). One pass over
        `rows` (a unit's spilled rows are read a chunk at a time), holding counts, not rows."""
        stats = cls()
        groupings: dict[str, Counter] = {key: Counter() for key in GROUPINGS}
        openings: dict[str, Counter] = {}  # text column -> opening -> rows
        sampled: dict[str, list[str]] = {}  # text column -> its first texts, for the n-gram ratios
        for row in rows:
            stats.rows += 1
            for key, counts in groupings.items():  # a null (a pair the judge did not score) is no value
                if row.get(key) is not None:
                    counts[row[key]] += 1
            row_texts = texts(row)
            for column in TEXT_COLUMNS:
                if column in row_texts:
                    text = row_texts[column]
                    stats.word_lengths.setdefault(column, Counter())[len(text.split())] += 1
                    openings.setdefault(column, Counter())[opening(text)] += 1
                    column_sample = sampled.setdefault(column, [])
                    if len(column_sample) < NGRAM_ROWS:
                        column_sample.append(text)
        stats.groupings = {key: counts for key, counts in groupings.items() if counts}
        stats.repetition = {
            column: Repetition.counted(sum(counts.values()), counts, sampled[column])
            for column, counts in openings.items()
        }
        return stats

    def merge(self, other: ConfigStats) -> None:
        self.rows += other.rows
        for mine, theirs in ((self.groupings, other.groupings), (self.word_lengths, other.word_lengths)):
            for key, counts in theirs.items():
                mine.setdefault(key, Counter()).update(counts)
        for column, repetition in other.repetition.items():
            self.repetition.setdefault(column, Repetition()).merge(repetition)

    def to_raw(self) -> dict:
        """JSON for a unit's own file; word lengths keyed by their text form, as JSON requires."""
        return {
            "rows": self.rows,
            "groupings": {key: dict(counts) for key, counts in self.groupings.items()},
            "word_lengths": {
                column: {str(length): n for length, n in counts.items()} for column, counts in self.word_lengths.items()
            },
            "repetition": {column: repetition.to_raw() for column, repetition in self.repetition.items()},
        }

    @classmethod
    def from_raw(cls, raw: dict) -> ConfigStats:
        return cls(
            raw["rows"],
            {key: Counter(counts) for key, counts in raw["groupings"].items()},
            {
                column: Counter({int(length): n for length, n in counts.items()})
                for column, counts in raw["word_lengths"].items()
            },
            {column: Repetition.from_raw(entry) for column, entry in raw.get("repetition", {}).items()},
        )

    def to_dict(self) -> dict:
        stats: dict = {"rows": self.rows}
        for key, name in GROUPINGS.items():
            if key in self.groupings:
                stats[name] = dict(sorted(self.groupings[key].items(), key=_in_order))
        words = {
            column: word_length_summary(self.word_lengths[column])
            for column in TEXT_COLUMNS
            if column in self.word_lengths
        }
        if words:
            stats["words"] = words
        if self.repetition:
            stats["repetition"] = {
                column: self.repetition[column].to_dict() for column in TEXT_COLUMNS if column in self.repetition
            }
        return stats


def repetition_by_discipline(disciplines: dict[str, ConfigStats], flag_share: float) -> dict:
    """stats.json's "repetition": over every discipline, each text column's top openings and distinct-n ratios
    (repetition.py says how they merge); per discipline, the same with its median length in words; and the
    disciplines whose top opening of a column is above `flag_share` of its rows."""
    by_discipline: dict[str, dict] = {}
    flagged: dict[str, list[str]] = {}
    overall: dict[str, Repetition] = {}  # text column -> over every discipline
    for discipline_id, stats in disciplines.items():
        for column, repetition in stats.repetition.items():
            overall.setdefault(column, Repetition()).merge(repetition)
        entry = by_discipline.setdefault(discipline_id, {})
        for column in TEXT_COLUMNS:
            if column not in stats.repetition:
                continue
            repetition = stats.repetition[column]
            entry[column] = {
                **repetition.to_dict(top=3),
                "words_p50": word_length_summary(stats.word_lengths[column])["p50"],
            }
            if repetition.top_opening_share() > flag_share:
                flagged.setdefault(discipline_id, []).append(column)
    return {
        "flag_opening_share": flag_share,
        "overall": {column: overall[column].to_dict() for column in TEXT_COLUMNS if column in overall},
        "flagged": flagged,
        "by_discipline": by_discipline,
    }


def _in_order(item: tuple) -> tuple:
    """Values in order, numbers (scores, which a unit's JSON keeps as text) by their value."""
    value = str(item[0])
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def build_stats(configs: dict[str, ConfigStats], quality_report: QualityReport, repetition: dict | None = None) -> dict:
    """JSON-ready stats: for each config (or config/split) its rows, groupings, lengths and repetition; then the
    quality counts; then, when given, the repetition per discipline (repetition_by_discipline)."""
    stats = {"configs": {name: stats.to_dict() for name, stats in configs.items()}, "quality": quality_report.to_dict()}
    if repetition is not None:
        stats["repetition"] = repetition
    return stats


def decontamination_stats(
    settings: Decontamination, benchmarks: list[BenchmarkIndex], report: QualityReport, shipped: list[str]
) -> dict:
    """What decontamination checked: each benchmark as configured, the items its index holds, and its hits per
    side summed over the units; `unchecked`, the names of the shipped list (`shipped`) the run does not check."""
    indexes = {index.name: index for index in benchmarks}
    checked = [
        {
            "name": benchmark.name,
            "source": f"{benchmark.dataset}@{benchmark.revision}" if benchmark.dataset else benchmark.path,
            "configs": benchmark.configs,
            "splits": benchmark.splits,
            "text_columns": benchmark.text_columns,
            "items": indexes[benchmark.name].items,
            "too_short": indexes[benchmark.name].too_short,
            "hits": {**dict.fromkeys(SIDES, 0), **report.benchmark_hits.get(benchmark.name, {})},
        }
        for benchmark in settings.benchmarks
    ]
    names = {benchmark.name for benchmark in settings.benchmarks}
    return {
        "ngram": settings.ngram,
        "min_words": settings.min_words,
        "benchmarks": checked,
        "unchecked": [name for name in shipped if name not in names],
    }


def held_out_stats(test_questions: dict[str, int], twins: dict[str, dict[str, list[dict[str, str]]]]) -> dict:
    """Per discipline, its test questions and those with a near-twin in another discipline's train split
    (builder/quality/held_out.py), with the twins of each."""
    return {
        "test_questions": test_questions,
        "with_near_twin_elsewhere": {discipline: len(twins.get(discipline, {})) for discipline in test_questions},
        "total_with_near_twin_elsewhere": sum(map(len, twins.values())),
        "near_twins": twins,
    }


def word_length_summary(lengths: Counter) -> dict:
    """count, min, nearest-rank p50 and p90, max, mean (2 decimals), and the fixed-bin histogram."""
    ordered = sorted(lengths.items())
    count = sum(lengths.values())
    if count:
        summary = {
            "min": ordered[0][0],
            "p50": _nearest_rank(ordered, count, 50),
            "p90": _nearest_rank(ordered, count, 90),
            "max": ordered[-1][0],
            "mean": round(sum(length * n for length, n in ordered) / count, 2),
        }
    else:
        summary = dict.fromkeys(("min", "p50", "p90", "max", "mean"))
    return {"count": count, **summary, "histogram": _histogram(lengths)}


def _nearest_rank(ordered: list[tuple[int, int]], count: int, percent: int) -> int:
    # Nearest rank, not interpolation: the value is always a length some row really has.
    rank, seen = max(1, math.ceil(percent / 100 * count)), 0
    for length, n in ordered:
        seen += n
        if seen >= rank:
            return length
    raise AssertionError("rank beyond count")


def _histogram(lengths: Counter) -> dict[str, int]:
    labels = [f"{low}-{high - 1}" for low, high in zip(WORD_BIN_EDGES, WORD_BIN_EDGES[1:], strict=False)]
    labels.append(f"{WORD_BIN_EDGES[-1]}+")
    counts: Counter[int] = Counter()
    for length, n in lengths.items():
        counts[bisect.bisect_right(WORD_BIN_EDGES, length) - 1] += n
    return {label: counts[bin_index] for bin_index, label in enumerate(labels)}
