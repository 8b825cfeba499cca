"""Counts and length distributions per config: what a trainer checks before trusting the data."""

import bisect
import math
from collections import Counter

from .report import QualityReport

# Lower edges of the word-count histogram; the last bin is open. Fixed so that versions compare.
WORD_BIN_EDGES = (0, 10, 20, 50, 100, 200, 500, 1000)
# Row keys counted when a config's rows carry them, and the name each count gets.
GROUPINGS = {"discipline_id": "by_discipline", "level": "by_level", "strategy": "by_strategy"}
# Text columns whose word counts are summarized when a config's rows carry them.
TEXT_COLUMNS = ("question", "answer")


def build_stats(configs: dict[str, list[dict]], quality_report: QualityReport) -> dict:
    """JSON-ready stats: for each config (or config/split) its rows, groupings and lengths; then the quality counts."""
    return {
        "configs": {name: _config_stats(rows) for name, rows in configs.items()},
        "quality": quality_report.to_dict(),
    }


def _config_stats(rows: list[dict]) -> dict:
    stats: dict = {"rows": len(rows)}
    for key, name in GROUPINGS.items():
        if any(key in row for row in rows):
            stats[name] = dict(sorted(Counter(row[key] for row in rows if key in row).items()))
    words = {
        column: word_length_summary([len(row[column].split()) for row in rows if column in row])
        for column in TEXT_COLUMNS
        if any(column in row for row in rows)
    }
    if words:
        stats["words"] = words
    return stats


def word_length_summary(lengths: list[int]) -> dict:
    """count, min, nearest-rank p50 and p90, max, mean (2 decimals), and the fixed-bin histogram."""
    ordered = sorted(lengths)
    if ordered:
        summary = {
            "min": ordered[0],
            "p50": _nearest_rank(ordered, 50),
            "p90": _nearest_rank(ordered, 90),
            "max": ordered[-1],
            "mean": round(sum(ordered) / len(ordered), 2),
        }
    else:
        summary = dict.fromkeys(("min", "p50", "p90", "max", "mean"))
    return {"count": len(ordered), **summary, "histogram": _histogram(ordered)}


def _nearest_rank(ordered: list[int], percent: int) -> int:
    # Nearest rank, not interpolation: the value is always a length some row really has.
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def _histogram(lengths: list[int]) -> dict[str, int]:
    labels = [f"{low}-{high - 1}" for low, high in zip(WORD_BIN_EDGES, WORD_BIN_EDGES[1:])]
    labels.append(f"{WORD_BIN_EDGES[-1]}+")
    counts = Counter(bisect.bisect_right(WORD_BIN_EDGES, length) - 1 for length in lengths)
    return {label: counts[bin_index] for bin_index, label in enumerate(labels)}
