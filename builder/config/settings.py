"""The `generation:` block of taxonomy.yaml (and of each preset): how much to generate, with which models,
limits, prices and quality steps. Defaults are the paper's scale; taxonomy.yaml spells them out."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from .base import Named, Node, problem

ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Range(Node):
    noun: ClassVar[str] = "range"
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Range:
        if self.min > self.max:
            raise problem(f"min {self.min} is greater than max {self.max}. Set min <= max")
        return self


class StageSettings(Node):
    """Keys every LLM stage accepts; None defers to the prompt file or the endpoint."""

    model: str | None = None
    base_urls: list[str] = []
    api_key_env: str | None = None
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    batch: bool = False
    # What the batches left unanswered (errors, expired, invalid outputs) goes online, or into new batches.
    batch_fallback: Literal["online", "batch"] = "online"

    @field_validator("base_urls", mode="before")
    @classmethod
    def _one_url_is_a_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("base_urls")
    @classmethod
    def _are_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if reason := url_problem(url):
                raise problem(f'"{url}" is not an endpoint URL: {reason}')
        return urls

    @field_validator("api_key_env")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        # The value is never echoed: if it is a pasted key, it must not land in logs.
        if value is not None and not ENV_NAME_PATTERN.match(value):
            raise problem(
                "expected the NAME of an environment variable, not a key. "
                'Write e.g. "api_key_env: OPENAI_API_KEY" and export the key in that variable'
            )
        return value


class SubjectsSettings(StageSettings):
    samples: int = Field(default=10, ge=1)
    per_sample: Range = Range(min=10, max=20)


class SyllabusSettings(StageSettings):
    sessions: Range = Range(min=10, max=30)
    key_concepts: Range = Range(min=3, max=6)


class QuestionsSettings(StageSettings):
    per_subject: int = Field(default=300, ge=1)
    # llama.cpp unrolls maxLength into nested grammar rules; its server fails to parse ~3,000 deep.
    max_chars: int = Field(default=1000, ge=20, le=2000)
    single_session_share: float = 0.5
    single_concepts: Range = Range(min=1, max=5)
    two_concepts: Range = Range(min=2, max=5)

    @field_validator("single_session_share")
    @classmethod
    def _is_a_fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise problem(
                f"{value} is outside [0, 1]. It is the fraction of questions drawn from a single "
                "session, e.g. 0.5 for half single-session and half two-session questions"
            )
        return value

    @field_validator("two_concepts")
    @classmethod
    def _one_concept_per_session(cls, value: Range) -> Range:
        if value.min < 2:
            raise problem(
                f"min {value.min} is below 2. A two-session question takes at least one concept "
                "from each session; set min to 2 or more"
            )
        return value


class AnswersSettings(StageSettings):
    max_chars: int | None = Field(default=None, ge=1, le=2000)  # null: unbounded (set it for local base models)


class JudgeSettings(StageSettings):
    """The optional judge stage: an LLM scores each question-answer pair (builder/stages/judge.py)."""

    enabled: bool = False  # off: no request, and the score columns are null
    max_reason_chars: int = Field(default=300, ge=20, le=2000)  # a one-sentence reason; longer fails the attempt


class Limits(Node):
    """How a run treats its endpoints and its failures: the engine's limits, the Batch API's polling, the failure
    threshold. The one Limits of a run: the plan applies the command's overrides (--concurrency,
    --max-failure-rate) to the taxonomy's."""

    concurrency: int = Field(default=64, ge=1)  # requests in flight per endpoint
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=120, gt=0)
    max_retries: int = Field(default=6, ge=0)  # transport retries within one attempt
    max_attempts: int = Field(default=3, ge=1)  # outputs that fail validation
    dead_after_s: float = Field(default=30, gt=0)  # an endpoint failing to connect or answer this long stops the build
    batch_poll_s: float = Field(default=60, gt=0)  # longest wait between two polls of a running batch
    max_failure_rate: float = Field(default=0.01, ge=0, le=1)  # above it, `glan build` exits 1
    # A build estimated to send more requests, or to cost more USD, starts only once the user says so (a terminal's
    # confirmation, --yes, or yes=True from Python): a paper-sized run never starts by accident.
    confirm_above_requests: int = Field(default=10_000, ge=0)
    confirm_above_usd: float = Field(default=10.0, ge=0)


class Price(Node):
    noun: ClassVar[str] = "price"
    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    # Input the endpoint served from its prefix cache (usage.prompt_tokens_details.cached_tokens); None: priced as
    # input, no discount.
    cached_input_per_million: float | None = Field(default=None, ge=0)

    @property
    def cached_input(self) -> float:
        return self.input_per_million if self.cached_input_per_million is None else self.cached_input_per_million


class Dedup(Node):
    exact: bool = True
    near: bool = True
    threshold: float = Field(default=0.8, gt=0, le=1)
    num_perm: int = Field(default=128, ge=16)
    shingle_words: int = Field(default=1, ge=1)


BENCHMARK_FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".csv")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


class Benchmark(Named):
    """What decontamination checks against: a Hugging Face dataset (`dataset`, a pinned `revision`, `configs`,
    `splits`) or a local file (`path`); each text of each of its `text_columns` is one benchmark item.

    The keys of glan 0.1 (`path`, `text_column`) still read, as a file entry with one text column.
    """

    noun: ClassVar[str] = "benchmark"
    name_example: ClassVar[str] = "gsm8k"
    dataset: str | None = None  # a Hub dataset id, e.g. openai/gsm8k
    revision: str | None = None  # the commit sha the dataset is read at
    configs: list[str] = []  # every config is read with every split
    splits: list[str] = []
    path: str | None = None  # a local .jsonl, .jsonl.gz, .parquet or .csv file
    text_columns: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _text_column_of_glan_0_1(cls, data: Any) -> Any:
        if isinstance(data, dict) and "text_column" in data and "text_columns" not in data:
            data = {**data, "text_columns": data["text_column"]}
            del data["text_column"]
        return data

    @field_validator("configs", "splits", "text_columns", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _a_hub_dataset_or_a_file(self) -> Benchmark:
        hub_keys = [key for key in ("revision", "configs", "splits") if getattr(self, key)]
        if (self.dataset is None) == (self.path is None):
            raise problem(
                f'benchmark "{self.name}" needs either "dataset:" (a Hugging Face dataset id, with revision, '
                'configs and splits) or "path:" (a local file), not both or neither'
            )
        if self.path is not None:
            if hub_keys:
                raise problem(
                    f'"{hub_keys[0]}" is for a Hugging Face dataset, not a local file (path). '
                    f'Remove it, or name the dataset with "dataset:" instead of "path:"'
                )
            if not self.path.endswith(BENCHMARK_FILE_SUFFIXES):
                raise problem(
                    f'"{self.path}" is not a benchmark file glan reads. Give a '
                    f"{', '.join(BENCHMARK_FILE_SUFFIXES)} file"
                )
            return self
        if self.revision is None or not COMMIT_SHA.match(self.revision):
            wrong = 'needs "revision:"' if self.revision is None else f'has revision "{self.revision}"; give'
            raise problem(
                f'benchmark "{self.name}" {wrong} the commit sha (40 hex digits) of {self.dataset} to '
                "read, so that every build checks the same items. Find it in the dataset's history on "
                f'the Hub, or with huggingface_hub.HfApi().dataset_info("{self.dataset}").sha'
            )
        for key in ("configs", "splits"):
            if not getattr(self, key):
                raise problem(
                    f'benchmark "{self.name}" needs "{key}:", e.g. {key}: '
                    f"{'[main]' if key == 'configs' else '[train, test]'}"
                )
        return self

    @property
    def source(self) -> str:
        """Where the items come from, as a person reads it: `openai/gsm8k@<revision>` or the file's path."""
        return f"{self.dataset}@{self.revision}" if self.dataset else str(self.path)


class Decontamination(Node):
    ngram: int = Field(default=13, ge=1)
    # An item shorter than `ngram` words is matched whole, from this many words up: shorter ones ("the sun",
    # "Which of the following is true?") appear inside unrelated text too often to mean contamination.
    min_words: int = Field(default=8, ge=1)
    benchmarks: list[Benchmark] = []

    @model_validator(mode="after")
    def _distinct_names_and_min_words_within_ngram(self) -> Decontamination:
        if self.min_words > self.ngram:
            raise problem(f"min_words {self.min_words} is greater than ngram {self.ngram}. Set min_words <= ngram")
        names = [benchmark.name for benchmark in self.benchmarks]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            raise problem(
                f'benchmark name "{repeated[0]}" appears twice. Give each benchmark its own name: hits '
                "are counted per name"
            )
        return self


class HeldOutSplit(Node):
    per_discipline: int = Field(default=50, ge=0)


class AnswerFilters(Node):
    refusal_patterns: list[str] = ["I'm sorry", "I cannot", "As an AI"]


class Repetition(Node):
    """The repetition and diversity figures of the card (builder/quality/diversity.py): they drop nothing."""

    # A discipline whose most common question or answer opening (first three words) is above this share of its
    # rows is flagged in the card.
    flag_opening_share: float = Field(default=0.2, gt=0, le=1)


class Quality(Node):
    dedup: Dedup = Dedup()
    decontamination: Decontamination = Decontamination()
    test_split: HeldOutSplit = HeldOutSplit()
    answer_filters: AnswerFilters = AnswerFilters()
    # With the judge on: pairs scored below it are dropped ("low_score"), and so are pairs it could not score
    # ("unscored"); null keeps every pair.
    min_score: int | None = Field(default=None, ge=1, le=10)
    repetition: Repetition = Repetition()


class Generation(Node):
    """Run settings. Defaults are the paper's scale; taxonomy.yaml spells them out."""

    seed: int = 2402
    # Where the discipline units run: in this process, or as Ray tasks on a cluster (`glan build --ray`).
    executor: Literal["local", "ray"] = "local"
    levels: list[str] = Field(default=["introductory", "intermediate", "advanced", "graduate"], min_length=1)
    discipline_ids: list[str] | None = Field(default=None, min_length=1)  # None: every discipline
    limits: Limits = Limits()
    prices: dict[str, Price] = {}
    subjects: SubjectsSettings = SubjectsSettings()
    syllabus: SyllabusSettings = SyllabusSettings()
    questions: QuestionsSettings = QuestionsSettings()
    answers: AnswersSettings = AnswersSettings()
    judge: JudgeSettings = JudgeSettings()
    quality: Quality = Quality()


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint's base URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL, e.g. http://localhost:8000/v1"
    try:
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError:
        return "its port is not a number"
    return None
