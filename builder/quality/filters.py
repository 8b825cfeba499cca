"""Answers a trainer should not see: empty, or a refusal. (An answer cut off at the token limit never reaches a
row: its attempt fails, builder/llm/attempts.py, and the answers stage counts it as dropped, "truncated".)"""

ANSWER_DROP_REASONS = ("empty", "refusal")


def answer_drop_reason(answer: str | None, refusal_patterns: list[str]) -> str | None:
    """Why an answer must not become a row, or None when it may. A refusal is any pattern found anywhere in the
    answer, ignoring case."""
    if not (answer or "").strip():
        return "empty"
    folded_answer = _fold(answer or "")
    if any(_fold(pattern) in folded_answer for pattern in refusal_patterns):
        return "refusal"
    return None


def _fold(text: str) -> str:
    # Models write the typographic apostrophe as often as the ASCII one: "I’m sorry".
    return text.replace("\u2019", "'").casefold()
