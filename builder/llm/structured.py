"""Structured output: how the schema is sent in each mode, and how the reply is read back.

Modes: `json_schema` (OpenAI standard), `json_object` + schema (llama-cpp-python's server), `prompt`
(schema in the system message). Every mode sends the whole schema, length bounds included: OpenAI's
strict mode enforces minLength/maxLength (as the openai SDK's own `parse()` sends them), and so do
vLLM's and llama.cpp's grammars; an endpoint that refuses them in `auto` mode steps down to the next
mode, down to `prompt`, where the bounds are in the system message. Reading is lenient in every mode:
code fences and prose around the first JSON value are ignored, and raw newlines inside strings (which
small local models emit) are accepted. A reply is validated against the same schema it was asked for, and
a string in it that holds a control character fails it (builder/llm/free_text.py says which and why).
A free-text output (FreeText) sends no schema and is read by its own `read`.
"""

from __future__ import annotations

import itertools
import json
import re

from pydantic import BaseModel, ValidationError

from ..config.yamlfile import format_path
from .free_text import FreeText, control_character

MODES = ("json_schema", "json_object", "prompt")


def request_fields(mode: str, output_model: type[BaseModel]) -> dict:
    """The chat-completions body fields that ask for this schema in this mode."""
    schema = output_model.model_json_schema()
    if mode == "json_schema":
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": output_model.__name__, "schema": schema, "strict": True},
            }
        }
    if mode == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    return {}


def schema_instruction(output_model: type[BaseModel]) -> str:
    """Appended to the system message in `prompt` mode."""
    schema = json.dumps(output_model.model_json_schema(), ensure_ascii=False)
    return f"Reply with one JSON value that matches this JSON schema, and nothing else:\n```json\n{schema}\n```"


_decoder = json.JSONDecoder(strict=False)
_fence = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_opening = re.compile(r"[{\[]")
# Each start that fails costs up to the length of the text (a JSONDecodeError counts the lines before it): a reply
# of a million "{" would take minutes to read. A real reply's JSON comes within its first few brackets.
_MAX_STARTS = 32


def first_json_value(text: str):
    """The first JSON object or array in `text` (tried from its first _MAX_STARTS brackets); raises ValueError when
    there is none."""
    fenced = _fence.search(text)
    candidates = [fenced.group(1), text] if fenced else [text]
    for candidate in candidates:
        for opening in itertools.islice(_opening.finditer(candidate), _MAX_STARTS):
            try:
                return _decoder.raw_decode(candidate, opening.start())[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON value in the output")


def parse_output(text: str, output_model: type[BaseModel] | FreeText):
    """(value, None) or (None, reason): empty, invalid_json, "control_character: <field>: U+000C", or
    "schema_invalid: <field>: <rule that failed>"; a free-text output's own reasons (FreeText.read)."""
    if not text or not text.strip():
        return None, "empty"
    if isinstance(output_model, FreeText):
        return output_model.read(text)
    try:
        data = first_json_value(text)
    except ValueError:
        return None, "invalid_json"
    if found := _control_character(data, ()):
        return None, f"control_character: {found}"
    try:
        return output_model.model_validate(data), None
    except ValidationError as error:
        first = error.errors()[0]
        return None, f"schema_invalid: {format_path(first['loc']) or 'the reply'}: {first['msg']}"


def _control_character(value, path: tuple) -> str | None:
    """'<field>: U+000C' for the first string of a decoded reply that holds a control character, or None."""
    if isinstance(value, str):
        found = control_character(value)
        return f"{format_path(path) or 'the reply'}: {found}" if found else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if found := _control_character(item, (*path, key)):
            return found
    return None
