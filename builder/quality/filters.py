"""Answers a trainer should not see: cut off, empty, or a refusal."""

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
