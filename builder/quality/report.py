"""Counts of what each quality step dropped, per reason and discipline: one per unit, merged per build."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .decontaminate import SIDES


@dataclass
class QualityReport:
    dropped: dict[str, Counter] = field(default_factory=dict)  # reason -> discipline_id -> rows
    # benchmark name -> side ("question", "answer") -> pairs whose side shares words with it: the questions are
    # checked before answering, the answers of the questions that passed after
    benchmark_hits: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self, reason: str, rows: list[dict]) -> None:
        """Count `rows` as dropped for `reason`; a step that ran and dropped nothing shows as 0."""
        counts = self.dropped.setdefault(reason, Counter())
        counts.update(row["discipline_id"] for row in rows)

    def record_hits(self, hits: dict[str, dict[str, int]]) -> None:
        """Add hits per benchmark and side; every benchmark checked shows both sides, 0s included."""
        for name, sides in hits.items():
            counts = self.benchmark_hits.setdefault(name, dict.fromkeys(SIDES, 0))
            for side, count in sides.items():
                counts[side] += count

    def merge(self, other: QualityReport) -> None:
        for reason, counts in other.dropped.items():
            self.dropped.setdefault(reason, Counter()).update(counts)
        self.record_hits(other.benchmark_hits)

    def to_dict(self) -> dict:
        return {
            "dropped": {
                reason: {"total": sum(counts.values()), "by_discipline": dict(sorted(counts.items()))}
                for reason, counts in self.dropped.items()
            },
            "benchmark_hits": {name: dict(sides) for name, sides in self.benchmark_hits.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> QualityReport:
        return cls(
            {reason: Counter(entry["by_discipline"]) for reason, entry in data["dropped"].items()},
            {name: dict(sides) for name, sides in data["benchmark_hits"].items()},
        )
