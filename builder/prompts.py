"""Prompt files (prompts/<stage>.yaml): jinja2 templates, sampling params and the output model's name.

What can be checked without rendering is checked when a file is loaded, each problem with its file line:
the YAML, the keys, the sampling parameters (names the OpenAI chat API knows), the template syntax and
names the template sandbox refuses (builder/templates.py: a prompt file is untrusted input). builder/preflight.py
then renders every prompt once with its stage's real variables, before any request.

A file may also hold `local_examples`: worked exchanges (the variables of an example item, and the JSON
reply) that a tiny embedded model needs and a real model does not. On the embedded model's runs
(`load_prompt(..., embedded=True)`) each is sent as a user and an assistant message before the
real request: as previous turns rather than text in the request, because a 135M model copies an example
it reads in the request word for word, and two of them from unrelated disciplines, because after one it
drifts to that one's topic (docs/embedded_models.md). Everywhere else the prompt, its fingerprint and so
every cache key are what they are without the key.

The embedded runs also ask for a free-text output (questions, answers) in its JSON form (stages.JSON_FORMS),
so the examples' replies are JSON there too: under llama.cpp's JSON grammar a 135M model stops where the
string closes; as free text it wrote statements where a question was asked for, and answers past their
bounds (docs/embedded_models.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jinja2
import yaml
from pydantic import Field, ValidationError, create_model

from .config.base import Node, describe
from .config.yamlfile import FileError, first_problem, parse_yaml, read_text
from .schemas import one_of
from .stages import JSON_FORMS, OUTPUTS
from .templates import Sandbox, error_line, refused_access

# Prompt files are untrusted (a pulled release carries them): they render in the sandbox (builder/templates.py).
_jinja = Sandbox(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


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


class LocalExample(Node):
    noun: ClassVar[str] = "local example"
    context: dict[str, Any]  # the user template's variables, for an item of another discipline
    reply: dict[str, Any]  # the JSON the stage expects for it (of a free-text output: its JSON form)


class _PromptFile(Node):
    noun: ClassVar[str] = "prompt file"


# The output models a prompt file may name come from the stage registry, so the model is made at run time.
PromptFile: type[Node] = create_model(
    "PromptFile",
    __base__=_PromptFile,
    output_model=(one_of(OUTPUTS), ...),
    params=(SamplingParams, ...),
    system=(str, ...),
    user=(str, ...),
    local_examples=(list[LocalExample], []),
)


@dataclass(frozen=True)
class Prompt:
    stage: str
    output_model: str
    params: dict
    system_source: str
    user_source: str
    fingerprint: str
    path: str  # the prompt file, for errors
    examples: tuple[dict, ...] = ()  # the local_examples exchanges, on the embedded model's runs only
    system: jinja2.Template = field(init=False, repr=False, compare=False)
    user: jinja2.Template = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "system", _jinja.from_string(self.system_source))
        object.__setattr__(self, "user", _jinja.from_string(self.user_source))

    def __reduce__(self):
        # A compiled template does not pickle: a Ray worker gets the sources and compiles them again.
        return Prompt, (
            self.stage,
            self.output_model,
            self.params,
            self.system_source,
            self.user_source,
            self.fingerprint,
            self.path,
            self.examples,
        )

    def render(self, **context) -> list[dict]:
        """The messages; a template that fails with these variables (an undefined one, an access the sandbox
        refuses) is a PromptError naming the file and the template line."""
        try:
            return [
                {"role": "system", "content": self.system.render(**context).strip()},
                *self.examples,
                {"role": "user", "content": self.user.render(**context).strip()},
            ]
        except jinja2.TemplateError as error:
            line = error_line(error)
            where = f"template line {line}: " if line else ""
            raise PromptError(
                self.path,
                None,
                "",
                f"{where}{(error.message or '').rstrip('.')}. The {self.stage} prompt "
                f"can use: {', '.join(sorted(context))}.",
            ) from None


def prompt_path(directory: str | Path, name: str) -> Path:
    """The prompt file of a stage (or of `propose`): prompts/<name>.yaml."""
    return Path(directory) / f"{name}.yaml"


def load_prompt(directory: Path, stage: str, embedded: bool = False) -> Prompt:
    path = prompt_path(directory, stage)
    source = str(path)
    text = read_text(
        path, PromptError, "Every stage needs a prompt file; copy it from the prompts/ that `glan init` writes."
    )
    root, data = parse_yaml(text, source, PromptError)
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise PromptError(
            source,
            root.start_mark.line + 1 if root else 1,
            "",
            f"the file holds {describe(data)}, not a prompt: a mapping with output_model, params, "
            "system and user. Compare with the prompt files that `glan init` writes.",
        )
    try:
        PromptFile.model_validate(data)
    except ValidationError as error:
        raise first_problem(error, PromptFile, source, root, (), PromptError) from None
    system, user = (_checked_template(source, _value_node(root, part), part) for part in ("system", "user"))
    # Only the embedded route reads the examples: a remote route neither sends nor checks them.
    examples = _example_messages(source, root, data.get("local_examples", []), user) if embedded else ()
    named: str = data["output_model"]
    output_model = JSON_FORMS.get(named, named) if embedded else named
    # Params keep the file's own values (1 stays 1, not 1.0): they are part of every cache key. The
    # fingerprint covers what shapes the output: the examples only where they are sent, so adding them to
    # a file changes no remote fingerprint, and the output model as it is asked for.
    shaping = data if examples else {key: value for key, value in data.items() if key != "local_examples"}
    shaping = {**shaping, "output_model": output_model}
    fingerprint = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]
    return Prompt(stage, output_model, dict(data["params"]), system, user, fingerprint, source, examples)


def _example_messages(source: str, root: yaml.MappingNode, examples: list[dict], user: str) -> tuple[dict, ...]:
    """Rendered when the prompt is loaded, so a broken example is reported before any request."""
    template = _jinja.from_string(user)
    messages = []
    for index, example in enumerate(examples):
        try:
            request = template.render(**example["context"]).strip()
        except jinja2.TemplateError as error:
            line = _value_node(root, "local_examples").value[index].start_mark.line + 1
            hint = (
                "Give the example every variable the user template uses"
                if isinstance(error, jinja2.UndefinedError)
                else "Use only the prompt's variables (docs/security.md)"
            )
            raise PromptError(
                source, line, f"local_examples[{index}].context", f"{(error.message or '').rstrip('.')}. {hint}."
            ) from None
        messages += [
            {"role": "user", "content": request},
            {"role": "assistant", "content": json.dumps(example["reply"], ensure_ascii=False)},
        ]
    return tuple(messages)


def _value_node(root: yaml.MappingNode, key: str) -> yaml.ScalarNode:
    return next(value for node, value in root.value if isinstance(node, yaml.ScalarNode) and node.value == key)


def _checked_template(source: str, node: yaml.ScalarNode, part: str) -> str:
    """The template's source, once it compiles; a syntax error names its file line."""
    # A block scalar ("system: |") starts on the line after its key; template line 1 is that line.
    first_line = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
    try:
        refused = refused_access(node.value, _jinja)
    except jinja2.TemplateSyntaxError as error:
        raise PromptError(
            source,
            first_line + (error.lineno or 1) - 1,
            part,
            f"template syntax error: {(error.message or '').rstrip('.')}. Check the {{{{ }}}} and {{% %}} tags "
            "on this line.",
        ) from None
    if refused:
        line, name = refused
        raise PromptError(
            source,
            first_line + line - 1,
            part,
            f"the template reaches for {name!r}, which the template sandbox refuses (names starting "
            "with _). Use only the prompt's variables and their fields (docs/security.md).",
        )
    return node.value
