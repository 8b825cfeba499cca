"""`--set KEY=VALUE` (and glan.build's `overrides`): generation settings over the preset's, validated as the same
key would be in taxonomy.yaml, with the same one-line message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from .settings import Generation
from .yamlfile import FileError, first_problem


class OverrideError(FileError):
    """A --set that names no setting, or gives a value the setting does not take."""

    example = "the generation block of the taxonomy.yaml that `glan init` writes"


def parse_override(text: str) -> tuple[str, Any]:
    """`questions.per_subject=10` -> ("questions.per_subject", 10): the value read as YAML reads it."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise OverrideError(
            None, None, "--set", f"{text!r} is not KEY=VALUE. Write e.g. --set questions.per_subject=10"
        )
    try:
        return key.strip(), yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as error:
        reason = getattr(error, "problem", None) or error
        raise OverrideError(None, None, f"--set {key.strip()}", f"{value!r} does not read as YAML ({reason})") from None


def overridden(generation: Generation, overrides: Mapping[str, Any]) -> Generation:
    """`generation` with each dotted key of `overrides` set to its value, validated as the YAML is."""
    if not overrides:
        return generation
    merged = generation.model_dump()
    for key, value in overrides.items():
        parts = key.split(".")
        if not all(parts):
            raise OverrideError(
                None, None, f"--set {key}", "a setting's key is dotted names, e.g. questions.per_subject"
            )
        node = merged
        for part in parts[:-1]:
            if node.get(part) is None:  # a new key, or a setting that is null: validation says which
                node[part] = {}
            child = node[part]
            if not isinstance(child, dict):
                raise OverrideError(None, None, f"--set {key}", f"{part} is a value, not a mapping of settings")
            node = child
        node[parts[-1]] = value
    try:
        return Generation.model_validate(merged)
    except ValidationError as error:
        problem = first_problem(error, Generation, None, None, (), OverrideError)
        raise OverrideError(None, None, "--set", str(problem)) from None
