"""The shape every LLM stage has (like a curator `LLM` subclass):

    inputs(parents) -> items;  samples(item) -> sample indices;  context(item) -> prompt variables;
    parse(item, values) -> output rows;  finish(rows, ...) -> the config's rows by split.

A stage never calls the network: the unit renders its prompts as the engine sends them, and gives `parse` the
validated outputs of the item's successful samples. Each stage declares once what it is: its prompt file and
settings key (`name`), the dataset config its rows fill and that config's columns, its output (structured or free
text, and the name its prompt file gives it), the quality steps and splits its rows go through, and how many
requests and rows it makes by the settings. The unit runs the registry's stages in order without naming one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from datasets import Features
from pydantic import BaseModel

from ..config.settings import Generation
from ..llm.free_text import FreeText
from ..quality import BenchmarkIndex, Kept, QualityReport, Rows


@dataclass(frozen=True)
class Output:
    """What a stage asks the LLM for. `name` is what its prompt file's `output_model` says; `record` builds the
    pydantic model of one output from the run's settings (the bounds the paper gives are in the schema the endpoint
    enforces). A free-text output (`free_text`) is the reply's text, validated as the record's one field, with
    `label` unwrapped when the model writes it ("Question:"); its `json_form` (what glan 0.1's prompt files named)
    asks for the same record as JSON."""

    name: str
    record: Callable[[Generation], type[BaseModel]]
    free_text: bool = False
    label: str | None = None
    json_form: str | None = None

    def model(self, generation: Generation) -> type[BaseModel] | FreeText:
        """The output model a request carries."""
        record = self.record(generation)
        return FreeText(record, self.label) if self.free_text else record


@dataclass(frozen=True)
class StageContext:
    settings: Generation  # the run's resolved generation settings
    model: str
    prompt_fingerprint: str

    def provenance(self) -> dict:
        return {"model": self.model, "prompt_fingerprint": self.prompt_fingerprint}


class Stage:
    name: ClassVar[str]  # prompt file and settings key
    config: ClassVar[str]  # the dataset config its rows fill
    features: ClassVar[Features]  # the config's columns
    output: ClassVar[Output]
    example: ClassVar[dict]  # an output as the LLM gives it, for checking the prompt before any request
    # From this stage on a unit holds nearly all its rows and sends nearly all its requests: it waits for room first
    # (builder/execute/admission.py).
    holds_the_unit: ClassVar[bool] = False

    @staticmethod
    def runs(settings: Generation) -> bool:
        """Whether a run with these settings runs the stage (the judge is optional; the plan leaves out a stage
        that does not run, prompt file included)."""
        return True

    def __init__(self, context: StageContext):
        self.ctx = context

    def inputs(self, parents: Iterable[dict]) -> Iterable[dict]:
        return parents

    def item_id(self, item: dict) -> str:
        raise NotImplementedError

    def samples(self, item: dict) -> list[int]:
        return [0]

    def context(self, item: dict) -> dict:
        raise NotImplementedError

    def prompt_cache_key(self, item: dict) -> str | None:
        """What the item's prompt shares a long prefix with (its subject, say), for OpenAI's prompt_cache_key; None:
        nothing worth caching."""
        return None

    def parse(self, item: dict, values: list) -> list[dict]:
        raise NotImplementedError

    def unanswered(self, item: dict) -> list[dict]:
        """The rows of an item that got no valid output: none, unless the stage keeps every item (the judge)."""
        return []

    async def finish(
        self,
        rows: Rows,
        failed: list[tuple[dict, str]],
        benchmarks: list[BenchmarkIndex],
        report: QualityReport,
        new_rows: Callable[[], Kept],
    ) -> dict[str, Rows]:
        """The config's rows by split, once the quality steps after this stage dropped what they drop (counted in
        `report`); `failed` are the items that got no valid output, with their last failure. `rows` are on disk, read
        a chunk at a time; `new_rows()` is where to put rows a step keeps (builder/quality/steps.py, filter_steps).
        The next stage reads the rows of every split. A stage that fills the config of the stage before it (the
        judge) returns its rows under "train", in its items' order: the unit puts each back in the split its item
        was in."""
        return {"train": rows}

    @staticmethod
    def texts(row: dict) -> dict:
        """The text columns of a row that stats measure (builder/quality/stats.py), by name."""
        return row

    @staticmethod
    def requests_per_input(settings: Generation) -> int:
        """Requests one input (a row of the stage before, or a discipline) makes."""
        return 1

    @staticmethod
    def rows_per_request(settings: Generation) -> float:
        """Rows an answered request yields, by the settings (an estimate uses what the cache shows where it can)."""
        return 1


def lineage(row: dict) -> dict:
    return {key: row[key] for key in ("discipline_id", "field", "subfield", "discipline")}


def subject_lineage(row: dict) -> dict:
    return {"subject_id": row["subject_id"], **lineage(row), "subject": row["subject"], "level": row["level"]}


def clean(text: str) -> str:
    """One line, single spaces, no trailing punctuation: how names and concepts are compared and stored."""
    return re.sub(r"\s+", " ", text).strip(" .;:,-")
