"""Answers a trainer should not see: cut off, empty, or a refusal."""

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter


@dataclass(frozen=True)
class AnswerDrop:
    row: dict
    reason: str  # "truncated", "empty" or "refusal"


@dataclass(frozen=True)
class FilterResult:
    kept: list[dict]  # in input order
    dropped: list[AnswerDrop]  # in input order


ANSWER_DROP_REASONS = ("truncated", "empty", "refusal")


def answer_drop_reason(answer: str | None, finish_reason: str | None, refusal_patterns: list[str]) -> str | None:
    """Why an answer must not become a row, or None when it may.

    "truncated" comes first: the engine retries those once with more tokens, whatever the text.
    A refusal is any pattern found anywhere in the answer, ignoring case.
    """
    if finish_reason == "length":
        return "truncated"
    if not (answer or "").strip():
        return "empty"
    folded_answer = _fold(answer)
    if any(_fold(pattern) in folded_answer for pattern in refusal_patterns):
        return "refusal"
    return None


def _fold(text: str) -> str:
    # Models write the typographic apostrophe as often as the ASCII one: "I’m sorry".
    return text.replace("\u2019", "'").casefold()


def filter_answers(rows: list[dict], refusal_patterns: list[str],
                   answer_of: Callable[[dict], str] = itemgetter("answer")) -> FilterResult:
    """`answer_of` reads a row's answer; `finish_reason`, where a row has one, marks a cut-off answer."""
    kept, dropped = [], []
    for row in rows:
        reason = answer_drop_reason(answer_of(row), row.get("finish_reason"), refusal_patterns)
        if reason is None:
            kept.append(row)
        else:
            dropped.append(AnswerDrop(row, reason))
    return FilterResult(kept, dropped)
