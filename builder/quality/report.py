"""Counts of what each quality step dropped, per reason and discipline: one per unit, merged per build."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class QualityReport:
    dropped: dict[str, Counter] = field(default_factory=dict)  # reason -> discipline_id -> rows
    benchmark_hits: dict[str, int] = field(default_factory=dict)  # benchmark name -> questions hit

    def record(self, reason: str, rows: list[dict]) -> None:
        """Count `rows` as dropped for `reason`; a step that ran and dropped nothing shows as 0."""
        counts = self.dropped.setdefault(reason, Counter())
        counts.update(row["discipline_id"] for row in rows)

    def merge(self, other: QualityReport) -> None:
        for reason, counts in other.dropped.items():
            self.dropped.setdefault(reason, Counter()).update(counts)
        for name, hits in other.benchmark_hits.items():
            self.benchmark_hits[name] = self.benchmark_hits.get(name, 0) + hits

    def to_dict(self) -> dict:
        return {
            "dropped": {
                reason: {"total": sum(counts.values()), "by_discipline": dict(sorted(counts.items()))}
                for reason, counts in self.dropped.items()
            },
            "benchmark_hits": dict(self.benchmark_hits),
        }

    @classmethod
    def from_dict(cls, data: dict) -> QualityReport:
        return cls(
            {reason: Counter(entry["by_discipline"]) for reason, entry in data["dropped"].items()},
            dict(data["benchmark_hits"]),
        )
