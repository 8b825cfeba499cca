"""The models of what the LLM returns (each stage declares which it asks for, builder/stages/), and the column
groups every config shares (datasets).

Subjects and syllabi are structured (pydantic models, asked for as JSON); questions and answers are free
text, as the paper asked for them (builder/llm/free_text.py), validated as a one-field model. Output models are
built from the run's settings so that the bounds the paper gives (sessions per syllabus, key concepts per session,
subjects per sample) are part of the schema the endpoint enforces: a grammar-constrained local model then cannot
emit an empty list or an empty name. A free-text output is validated against the same bounds on read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, cast

from datasets import Features, List, Value
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

# Short strings stay short: a small model under a grammar otherwise rambles into max_tokens.
Name = (str, Field(min_length=3, max_length=120))
Phrase = Annotated[str, StringConstraints(min_length=2, max_length=120)]


def one_of(values: Iterable[str]) -> Any:
    """The type `Literal[...]` of `values`, made at run time."""
    return cast(Any, Literal)[tuple(values)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def subject_list_model(levels: list[str], min_subjects: int, max_subjects: int) -> type[BaseModel]:
    # Made at run time from the settings: to a type checker, a model of no type it can know.
    subject: Any = create_model(
        "Subject",
        __base__=Strict,
        name=Name,
        level=(one_of(levels), ...),
        subtopics=(list[Phrase], Field(min_length=1, max_length=8)),
    )
    return create_model(
        "SubjectList",
        __base__=Strict,
        subjects=(list[subject], Field(min_length=min_subjects, max_length=max_subjects)),
    )


def syllabus_model(min_sessions: int, max_sessions: int, min_concepts: int, max_concepts: int) -> type[BaseModel]:
    session: Any = create_model(
        "ClassSession",
        __base__=Strict,
        title=Name,
        description=(str, Field(min_length=10, max_length=600)),
        key_concepts=(list[Phrase], Field(min_length=min_concepts, max_length=max_concepts)),
    )
    return create_model(
        "Syllabus",
        __base__=Strict,
        sessions=(list[session], Field(min_length=min_sessions, max_length=max_sessions)),
    )


def question_model(max_chars: int) -> type[BaseModel]:
    return create_model("HomeworkQuestion", __base__=Strict, question=(str, Field(min_length=20, max_length=max_chars)))


def answer_model(max_chars: int | None) -> type[BaseModel]:
    # A bound lets a grammar close the string: a base model otherwise writes until max_tokens.
    return create_model("Answer", __base__=Strict, answer=(str, Field(min_length=1, max_length=max_chars)))


def judge_model(max_reason_chars: int) -> type[BaseModel]:
    """The judge's verdict on a question-answer pair. `strict`: a score is a JSON integer, never "7", 7.5 or true,
    so that whatever an endpoint replies lands in the column as the integer it said or fails its attempt."""
    return create_model(
        "JudgeScore",
        __base__=Strict,
        score=(int, Field(ge=1, le=10, strict=True)),
        reason=(str, Field(min_length=1, max_length=max_reason_chars)),
    )


class ProposedDiscipline(Strict):
    name: str = Field(min_length=3, max_length=120)
    description: str = Field(min_length=10, max_length=300)


class ProposedSubfield(Strict):
    name: str = Field(min_length=3, max_length=120)
    disciplines: list[ProposedDiscipline] = Field(min_length=1, max_length=20)


class ProposedField(Strict):
    name: str = Field(min_length=3, max_length=120)
    subfields: list[ProposedSubfield] = Field(min_length=1, max_length=20)


class TaxonomyProposal(Strict):
    fields: list[ProposedField] = Field(min_length=1, max_length=20)


# Column groups the configs share (each stage declares its own Features from them).
LINEAGE = {
    "discipline_id": Value("string"),
    "field": Value("string"),
    "subfield": Value("string"),
    "discipline": Value("string"),
}
SUBJECT = {"subject_id": Value("string"), **LINEAGE, "subject": Value("string"), "level": Value("string")}
PROVENANCE = {"model": Value("string"), "prompt_fingerprint": Value("string")}
SAMPLED = {
    "strategy": Value("string"),
    "session_indices": List(Value("int32")),
    "sessions": List(Value("string")),
    "key_concepts": List(Value("string")),
}
# What the judge adds to a pair (builder/stages/judge.py): null in every column when the judge did not run.
JUDGED = {"score": Value("int32"), "score_reason": Value("string"), "judge_model": Value("string")}
TAXONOMY_FEATURES = Features({**LINEAGE, "description": Value("string")})
