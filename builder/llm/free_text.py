"""Free-text output: the reply's content is the output, asked for with no response_format and no schema in
the prompt, and kept as the model wrote it.

The paper asked for questions and answers as free text (GLAN §2.2): a JSON string is the wrong container
for them, because a model writing LaTeX or code inside one writes `\\frac`, `\\theta` or `print("a\\nb")`
with single backslashes, which JSON reads as a form feed, a tab or a line break (and `\\(` as an error).
So the text is not decoded at all: the only changes are the wrappers a model commonly puts around a
question (a code fence around the whole reply, a leading "Question:" label, surrounding quotes), and
surrounding whitespace.

Control characters: any of Unicode's control characters (category Cc: U+0000-U+001F, U+007F-U+009F) other
than tab and newline fails the attempt, in every text field of every stage (builder/llm/structured.py
checks the structured replies with the same pattern). In a JSON reply they are what single-backslash
LaTeX becomes (`\\f`, `\\b`, `\\r`); in any reply a NUL, form feed, ESC or carriage return is no part of a
question or an answer. Nothing is repaired: the attempt fails with reason `control_character` and the
request is asked again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from ..config.yamlfile import format_path

CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FENCED = re.compile(r"```[\w+-]*[ \t]*\n(.*?)\n?```", re.DOTALL)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}


def control_character(text: str) -> str | None:
    """'U+000C' for the first control character in `text` other than tab and newline, or None."""
    found = CONTROL_CHARACTER.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


@dataclass(frozen=True)
class FreeText:
    """A free-text output. `record` is a pydantic model with one string field: the text is validated as that
    field (its length bounds come from the run's settings) and handed to the stage as the record, the same
    value the output's JSON form gives. `label` (e.g. "Question") turns on unwrapping: a code fence around
    the whole reply, a leading "<label>:" and surrounding quotes are removed. Without it, the text is the
    reply stripped of surrounding whitespace only."""

    record: type[BaseModel]
    label: str | None = None

    def read(self, text: str) -> tuple[BaseModel | None, str | None]:
        """(record, None) or (None, reason): empty, "control_character: U+000C", or
        "text_invalid: <field>: <rule that failed>"."""
        if found := control_character(text):
            return None, f"control_character: {found}"
        text = self._unwrapped(text.strip(), self.label) if self.label else text.strip()
        if not text:
            return None, "empty"
        field = next(iter(self.record.model_fields))
        try:
            return self.record.model_validate({field: text}), None
        except ValidationError as error:
            first = error.errors()[0]
            return None, f"text_invalid: {format_path(first['loc'])}: {first['msg']}"

    def _unwrapped(self, text: str, label: str) -> str:
        fenced = _FENCED.fullmatch(text)
        if fenced and "```" not in fenced.group(1):
            text = fenced.group(1).strip()
        labelled = re.match(rf"(\*\*|__)?{re.escape(label)}(\*\*|__)?\s*:\s*(\*\*|__)?\s*", text, re.IGNORECASE)
        if labelled:
            text = text[labelled.end() :]
        closing = _QUOTES.get(text[:1])
        if (
            closing
            and len(text) > 1
            and text.endswith(closing)
            and text[0] not in text[1:-1]
            and closing not in text[1:-1]
        ):
            text = text[1:-1].strip()
        return text
