"""Prompt files (prompts/<stage>.yaml): jinja2 templates, sampling params and the output model's name.

What can be checked without rendering is checked when a file is loaded, each problem with its file line:
the YAML, the keys, the sampling parameters (names the OpenAI chat API knows) and the template syntax.
builder/preflight.py then renders every prompt once with its stage's real variables, before any request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import jinja2
import yaml
from pydantic import Field, ValidationError

from .config.base import Node, describe
from .config.yamlfile import FileError, first_problem, parse_yaml, read_text
from .schemas import OUTPUT_MODELS

_jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


class PromptError(FileError):
    """A prompt file that cannot be used; the message names the file, the line and what to fix."""

    example = "the prompt files that `glan init` writes"


class SamplingParams(Node):
    """The sampling parameters of the OpenAI chat API a prompt file may set (seed is set per request)."""

    noun: ClassVar[str] = "params mapping"
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)


class PromptFile(Node):
    noun: ClassVar[str] = "prompt file"
    output_model: Literal[tuple(OUTPUT_MODELS)]
    params: SamplingParams
    system: str
    user: str


@dataclass(frozen=True)
class Prompt:
    stage: str
    output_model: str
    params: dict
    system_source: str
    user_source: str
    fingerprint: str
    system: jinja2.Template = field(init=False, repr=False, compare=False)
    user: jinja2.Template = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "system", _jinja.from_string(self.system_source))
        object.__setattr__(self, "user", _jinja.from_string(self.user_source))

    def __reduce__(self):
        # A compiled template does not pickle: a Ray worker gets the sources and compiles them again.
        return Prompt, (self.stage, self.output_model, self.params, self.system_source, self.user_source,
                        self.fingerprint)

    def render(self, **context) -> list[dict]:
        return [
            {"role": "system", "content": self.system.render(**context).strip()},
            {"role": "user", "content": self.user.render(**context).strip()},
        ]


def load_prompt(directory: Path, stage: str) -> Prompt:
    path = Path(directory) / f"{stage}.yaml"
    source = str(path)
    text = read_text(path, PromptError, "Every stage needs a prompt file; copy it from the prompts/ that "
                                        "`glan init` writes.")
    root, data = parse_yaml(text, source, PromptError)
    if not isinstance(data, dict):
        raise PromptError(source, root.start_mark.line + 1 if root else 1, "",
                          f"the file holds {describe(data)}, not a prompt: a mapping with output_model, params, "
                          "system and user. Compare with the prompt files that `glan init` writes.")
    try:
        PromptFile.model_validate(data)
    except ValidationError as error:
        raise first_problem(error, PromptFile, source, root, (), PromptError) from None
    system, user = (_checked_template(source, _value_node(root, part), part) for part in ("system", "user"))
    # Params keep the file's own values (1 stays 1, not 1.0): they are part of every cache key. The
    # fingerprint covers what shapes the output.
    fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    return Prompt(stage, data["output_model"], dict(data["params"]), system, user, fingerprint)


def _value_node(root: yaml.MappingNode, key: str) -> yaml.ScalarNode:
    return next(value for node, value in root.value if isinstance(node, yaml.ScalarNode) and node.value == key)


def _checked_template(source: str, node: yaml.ScalarNode, part: str) -> str:
    """The template's source, once it compiles; a syntax error names its file line."""
    # A block scalar ("system: |") starts on the line after its key; template line 1 is that line.
    first_line = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
    try:
        _jinja.from_string(node.value)
    except jinja2.TemplateSyntaxError as error:
        raise PromptError(source, first_line + (error.lineno or 1) - 1, part,
                          f"template syntax error: {error.message.rstrip('.')}. Check the {{{{ }}}} and {{% %}} tags "
                          "on this line.") from None
    return node.value
