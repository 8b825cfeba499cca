"""Base models for the YAML files a person edits (taxonomy.yaml): unknown keys are errors, and a validator's
message is already the final "<problem>. <what to do>" that file:line errors carry."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

MAX_NAME_CHARS = 120  # names make ids, and ids name files (builder/taxonomy/model.py)


def problem(text: str) -> PydanticCustomError:
    """A validator error whose text is already the final "<problem>. <what to do>"."""
    return PydanticCustomError("taxonomy", "{text}", {"text": text})


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'text ("{shown}")'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Node(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    # No infinity or NaN either: a price of .inf made every cost NaN, which no budget or threshold compares above.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    noun: ClassVar[str] = "mapping"
    name_example: ClassVar[str] = ""


class Named(Node):
    name: str

    @field_validator("name", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise problem(f'empty. Give the {cls.noun} a name, e.g. "name: {cls.name_example}"')
        if isinstance(value, str) and len(value) > MAX_NAME_CHARS:
            raise problem(
                f"a name of {len(value):,} characters, more than {MAX_NAME_CHARS}. Give the {cls.noun} a "
                f'shorter name, e.g. "name: {cls.name_example}", and say more in its description'
            )
        return value
