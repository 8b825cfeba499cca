"""Prompt files (prompts/<stage>.yaml): jinja2 templates, sampling params and the output model's name."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal
from pathlib import Path

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .schemas import OUTPUT_MODELS

_jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


class PromptError(ValueError):
    """A prompt file that cannot be used; the message names the file and what to fix."""


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output_model: Literal[tuple(OUTPUT_MODELS)]
    params: dict[str, float | int]
    system: str
    user: str


@dataclass(frozen=True)
class Prompt:
    stage: str
    output_model: str
    params: dict
    system: jinja2.Template
    user: jinja2.Template
    fingerprint: str

    def render(self, **context) -> list[dict]:
        return [
            {"role": "system", "content": self.system.render(**context).strip()},
            {"role": "user", "content": self.user.render(**context).strip()},
        ]


def load_prompt(directory: Path, stage: str) -> Prompt:
    path = Path(directory) / f"{stage}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
        spec = PromptFile.model_validate(raw)
        templates = (_jinja.from_string(spec.system), _jinja.from_string(spec.user))
    except FileNotFoundError:
        raise PromptError(f"{path}: missing. Every stage needs a prompt file; copy it from the prompts/ that "
                          "`glan init` writes.")
    except yaml.YAMLError as error:
        raise PromptError(f"{path}: not valid YAML: {error}")
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise PromptError(f"{path}: {where}: {problem['msg']}. Keys: output_model (one of "
                          f"{', '.join(OUTPUT_MODELS)}), params, system, user.")
    except jinja2.TemplateSyntaxError as error:
        raise PromptError(f"{path}: template line {error.lineno}: {error.message}")
    # The fingerprint covers what shapes the output; sampling params are in every cache key anyway.
    canonical = json.dumps(spec.model_dump(), sort_keys=True)
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return Prompt(stage, spec.output_model, dict(spec.params), *templates, fingerprint)

