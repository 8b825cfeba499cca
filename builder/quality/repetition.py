"""Repetition and diversity of a text column (questions, answers), in a form that merges across disciplines: the
most common openings (first three words, as dedup normalises them) with their counts, and distinct-n-gram ratios
(distinct n-grams over all n-grams). They drop nothing; the card shows them, and flags a discipline whose top
opening is above a share (quality.repetition.flag_opening_share).

What a unit keeps is bounded whatever its rows: its TOP_OPENINGS most common openings, and n-gram counts over its
first NGRAM_ROWS texts (a ratio falls as a text grows, so a fixed sample also keeps disciplines comparable). Merged,
the openings are the sum of the disciplines' top lists (a count is then a lower bound), and the ratios are pooled
over the disciplines' samples: repetition across disciplines is not counted in them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .text import normalized_words

OPENING_WORDS = 3
TOP_OPENINGS = 10
NGRAM_ROWS = 500
NGRAM_SIZES = (1, 2)
_OPENING_CHARS = 200  # the opening lies in a text's first characters: the rest is not normalised for it


@dataclass
class Repetition:
    rows: int = 0
    openings: Counter = field(default_factory=Counter)  # opening -> rows (the top ones)
    ngrams: dict[int, list[int]] = field(default_factory=dict)  # n -> [distinct, total] over the sampled texts

    @classmethod
    def of(cls, texts: list[str]) -> Repetition:
        return cls.counted(len(texts), Counter(map(opening, texts)), texts[:NGRAM_ROWS])

    @classmethod
    def counted(cls, rows: int, openings: Counter, sampled_texts: list[str]) -> Repetition:
        """From what a pass over the texts counted: every opening's rows, and the first NGRAM_ROWS texts."""
        sampled = [normalized_words(text) for text in sampled_texts]
        ngrams = {}
        for n in NGRAM_SIZES:
            seen: set[int] = set()
            total = 0
            for words in sampled:
                grams = [hash(tuple(words[start : start + n])) for start in range(len(words) - n + 1)]
                seen.update(grams)
                total += len(grams)
            ngrams[n] = [len(seen), total]
        return cls(rows, Counter(dict(openings.most_common(TOP_OPENINGS))), ngrams)

    def merge(self, other: Repetition) -> None:
        self.rows += other.rows
        self.openings.update(other.openings)
        for n, (distinct, total) in other.ngrams.items():
            mine = self.ngrams.setdefault(n, [0, 0])
            mine[0] += distinct
            mine[1] += total

    def top_opening_share(self) -> float:
        return self.openings.most_common(1)[0][1] / self.rows if self.rows and self.openings else 0.0

    def to_raw(self) -> dict:
        return {
            "rows": self.rows,
            "openings": dict(self.openings.most_common()),
            "ngrams": {str(n): counts for n, counts in self.ngrams.items()},
        }

    @classmethod
    def from_raw(cls, raw: dict) -> Repetition:
        return cls(raw["rows"], Counter(raw["openings"]), {int(n): list(counts) for n, counts in raw["ngrams"].items()})

    def to_dict(self, top: int = TOP_OPENINGS) -> dict:
        """For stats.json: the `top` openings with their share of the rows, and distinct-n ratios (4 decimals)."""
        return {
            "rows": self.rows,
            "top_openings": [
                {"opening": opening, "rows": count, "share": round(count / self.rows, 4)}
                for opening, count in self.openings.most_common(top)
            ],
            "distinct": {
                f"distinct_{n}": round(distinct / total, 4) if total else None
                for n, (distinct, total) in sorted(self.ngrams.items())
            },
        }


def opening(text: str) -> str:
    """A text's first OPENING_WORDS words, as dedup normalises them."""
    return " ".join(normalized_words(text[:_OPENING_CHARS])[:OPENING_WORDS])
