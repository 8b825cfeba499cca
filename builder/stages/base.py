"""The shape every LLM stage has (like a curator `LLM` subclass):

    inputs(parents) -> items;  samples(item) -> sample indices;  context(item) -> prompt variables;
    parse(item, values) -> output rows.

A stage never calls the network: the unit renders its prompts as the engine sends them, and gives
`parse` the validated outputs of the item's successful samples. Each stage declares once what it is:
its prompt file (`name`), the dataset config its rows fill, the output model its prompt file must name
(structured: a pydantic model the reply is JSON of; free text: a FreeText, whose reply is the text), and
the config's columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from datasets import Features
from pydantic import BaseModel

from ..llm.free_text import FreeText
from ..prompts import Prompt


@dataclass(frozen=True)
class StageContext:
    settings: Any  # the run's resolved taxonomy Generation
    prompt: Prompt
    model: str
    output_model: type[BaseModel] | FreeText

    def provenance(self) -> dict:
        return {"model": self.model, "prompt_fingerprint": self.prompt.fingerprint}


class Stage:
    name: str  # prompt file and settings key
    config: str  # the dataset config its rows fill
    output_model: str  # the schemas.OUTPUT_MODELS name its prompt file must give (or its schemas.JSON_FORMS)
    features: Features  # the config's columns
    example: dict  # an output as the LLM gives it, for checking the prompt before any request

    def __init__(self, context: StageContext):
        self.ctx = context

    def inputs(self, parents: list[dict]) -> list[dict]:
        return parents

    def item_id(self, item: dict) -> str:
        raise NotImplementedError

    def samples(self, item: dict) -> list[int]:
        return [0]

    def context(self, item: dict) -> dict:
        raise NotImplementedError

    def parse(self, item: dict, values: list) -> list[dict]:
        raise NotImplementedError


def lineage(row: dict) -> dict:
    return {key: row[key] for key in ("discipline_id", "field", "subfield", "discipline")}


def subject_lineage(row: dict) -> dict:
    return {"subject_id": row["subject_id"], **lineage(row), "subject": row["subject"], "level": row["level"]}


def clean(text: str) -> str:
    """One line, single spaces, no trailing punctuation: how names and concepts are compared and stored."""
    return re.sub(r"\s+", " ", text).strip(" .;:,-")
