"""The taxonomy (fields -> sub-fields -> disciplines) with its generation settings and presets.

taxonomy.yaml is the one file a person edits, so every mistake in it becomes a single TaxonomyError
that reads "<file>:<line>: <field path>: <problem>. <what to do>". Lines come from the composed YAML
node tree, because pydantic only knows the path of a bad value, not where it was written.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import types
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

ID_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
START_FROM_SHIPPED = "start from the taxonomy.yaml shipped with glan"


class TaxonomyError(ValueError):
    """The one user-facing message for a bad taxonomy; file and line are None when unknown."""

    def __init__(self, file: str | None, line: int | None, path: str, message: str):
        self.file, self.line, self.path = file, line, path
        location = f"{file}:{line}" if file and line else file
        super().__init__(": ".join(part for part in (location, path, message) if part))


def _problem(text: str) -> PydanticCustomError:
    """A validator error whose text is already the final "<problem>. <what to do>"."""
    return PydanticCustomError("taxonomy", "{text}", {"text": text})


def slugify(name: str) -> str:
    """"Fractions, Decimals & Percentages" -> "fractions-decimals-percentages" (accents folded to ASCII)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def _describe(value: Any) -> str:
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


class _Node(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)
    noun: ClassVar[str] = "mapping"
    name_example: ClassVar[str] = ""


class _Named(_Node):
    name: str

    @field_validator("name", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _problem(f'empty. Give the {cls.noun} a name, e.g. "name: {cls.name_example}"')
        return value


class Range(_Node):
    noun: ClassVar[str] = "range"
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Range:
        if self.min > self.max:
            raise _problem(f"min {self.min} is greater than max {self.max}. Set min <= max")
        return self


class StageSettings(_Node):
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

    @field_validator("api_key_env")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        # The value is never echoed: if it is a pasted key, it must not land in logs.
        if value is not None and not ENV_NAME_PATTERN.match(value):
            raise _problem(
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
            raise _problem(
                f"{value} is outside [0, 1]. It is the fraction of questions drawn from a single "
                "session, e.g. 0.5 for half single-session and half two-session questions"
            )
        return value

    @field_validator("two_concepts")
    @classmethod
    def _one_concept_per_session(cls, value: Range) -> Range:
        if value.min < 2:
            raise _problem(
                f"min {value.min} is below 2. A two-session question takes at least one concept "
                "from each session; set min to 2 or more"
            )
        return value


class AnswersSettings(StageSettings):
    max_chars: int | None = Field(default=None, ge=1, le=2000)  # null: unbounded (set it for local base models)


class Limits(_Node):
    concurrency: int = Field(default=64, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=120, gt=0)
    max_retries: int = Field(default=6, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    batch_poll_s: float = Field(default=60, gt=0)  # longest wait between two polls of a running batch
    max_failure_rate: float = Field(default=0.01, ge=0, le=1)  # above it, `glan build` exits 1


class Price(_Node):
    noun: ClassVar[str] = "price"
    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class Dedup(_Node):
    exact: bool = True
    near: bool = True
    threshold: float = Field(default=0.8, gt=0, le=1)
    num_perm: int = Field(default=128, ge=16)
    shingle_words: int = Field(default=1, ge=1)


class Benchmark(_Named):
    noun: ClassVar[str] = "benchmark"
    name_example: ClassVar[str] = "gsm8k"
    path: str
    text_column: str


class Decontamination(_Node):
    ngram: int = Field(default=13, ge=1)
    benchmarks: list[Benchmark] = []


class HeldOutSplit(_Node):
    per_discipline: int = Field(default=50, ge=0)


class AnswerFilters(_Node):
    refusal_patterns: list[str] = ["I'm sorry", "I cannot", "As an AI"]


class Quality(_Node):
    dedup: Dedup = Dedup()
    decontamination: Decontamination = Decontamination()
    test_split: HeldOutSplit = HeldOutSplit()
    answer_filters: AnswerFilters = AnswerFilters()


class Generation(_Node):
    """Run settings. Defaults are the paper's scale; taxonomy.yaml spells them out."""

    seed: int = 2402
    levels: list[str] = Field(default=["introductory", "intermediate", "advanced", "graduate"], min_length=1)
    discipline_ids: list[str] | None = Field(default=None, min_length=1)  # None: every discipline
    limits: Limits = Limits()
    prices: dict[str, Price] = {}
    subjects: SubjectsSettings = SubjectsSettings()
    syllabus: SyllabusSettings = SyllabusSettings()
    questions: QuestionsSettings = QuestionsSettings()
    answers: AnswersSettings = AnswersSettings()
    quality: Quality = Quality()


class Discipline(_Named):
    noun: ClassVar[str] = "discipline"
    name_example: ClassVar[str] = "Organic Chemistry"
    id: str | None = None
    description: str = ""

    @field_validator("id")
    @classmethod
    def _is_a_slug(cls, value: str | None) -> str | None:
        if value is not None and not ID_PATTERN.match(value):
            raise _problem(
                f'invalid id "{value}". An id is lowercase letters and digits joined by single '
                'hyphens, e.g. "organic-chemistry"'
            )
        return value

    @model_validator(mode="after")
    def _has_an_id(self) -> Discipline:
        if not self.discipline_id:
            raise _problem(
                f'name "{self.name}" has no ASCII letters or digits to make an id from. '
                'Add an explicit id, e.g. "id: my-discipline"'
            )
        return self

    @property
    def discipline_id(self) -> str:
        return self.id or slugify(self.name)


class Subfield(_Named):
    noun: ClassVar[str] = "sub-field"
    name_example: ClassVar[str] = "Chemistry"
    disciplines: list[Discipline] = Field(min_length=1)


class KnowledgeField(_Named):
    noun: ClassVar[str] = "field"
    name_example: ClassVar[str] = "Natural Sciences"
    subfields: list[Subfield] = Field(min_length=1)


@dataclass(frozen=True)
class DisciplineRef:
    field: str
    subfield: str
    discipline: str
    discipline_id: str
    description: str


class Taxonomy(_Node):
    noun: ClassVar[str] = "taxonomy"
    version: str
    license: str = "other"  # the dataset card's license (a Hub license id)
    generation: Generation = Generation()
    presets: dict[str, dict[str, Any]] = {}
    fields: list[KnowledgeField] = Field(min_length=1)

    # Where the taxonomy was read from, so errors raised later (settings()) still name file and line.
    _source: str | None = PrivateAttr(default=None)
    _root: yaml.Node | None = PrivateAttr(default=None)

    @field_validator("version", mode="before")
    @classmethod
    def _is_semver(cls, value: Any) -> Any:
        if not isinstance(value, str) or not VERSION_PATTERN.match(value):
            raise _problem(
                f"expected a version X.Y.Z, got {_describe(value)}. "
                'Write e.g. "version: 1.0.0" and bump it whenever the taxonomy changes'
            )
        return value

    def disciplines(self, settings: Generation | None = None) -> list[DisciplineRef]:
        """Every discipline in file order, or only those in settings.discipline_ids."""
        refs = [
            DisciplineRef(field.name, subfield.name, discipline.name, discipline.discipline_id, discipline.description)
            for field in self.fields
            for subfield in field.subfields
            for discipline in subfield.disciplines
        ]
        if settings is None or settings.discipline_ids is None:
            return refs
        return [ref for ref in refs if ref.discipline_id in settings.discipline_ids]

    def settings(self, preset: str | None = None) -> Generation:
        """The generation settings with the preset deep-merged over them."""
        if preset is None:
            return self.generation
        if preset not in self.presets:
            known = ", ".join(sorted(self.presets)) or "none"
            line = _locate(self._root, ("presets",)) if self._root else None
            raise TaxonomyError(
                self._source, line, "presets",
                f'unknown preset "{preset}". Known presets: {known}; pick one or add "{preset}:" under "presets:".',
            )
        merged = _deep_merge(self.generation.model_dump(), self.presets[preset])
        try:
            return Generation.model_validate(merged)
        except ValidationError as error:
            raise _first_problem(error, Generation, self._source, self._root, ("presets", preset)) from None


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---- loading ---------------------------------------------------------------------------------


def load_taxonomy(path: str | Path) -> Taxonomy:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        message = f"file not found. Pass the path of a taxonomy YAML, or {START_FROM_SHIPPED}."
        raise TaxonomyError(source, None, "", message) from None
    except (OSError, UnicodeDecodeError) as error:
        message = f"cannot read the file ({error}). Check that it is a readable UTF-8 text file."
        raise TaxonomyError(source, None, "", message) from None
    root, data = _parse_yaml(text, source)
    try:
        taxonomy = Taxonomy.model_validate(data)
    except ValidationError as error:
        raise _first_problem(error, Taxonomy, source, root, ()) from None
    taxonomy._source, taxonomy._root = source, root
    _check_unique_disciplines(taxonomy, source, root)
    _check_discipline_ids(taxonomy, taxonomy.generation, source, root, ("generation",))
    for preset in taxonomy.presets:
        _check_discipline_ids(taxonomy, taxonomy.settings(preset), source, root, ("presets", preset))
    return taxonomy


def _parse_yaml(text: str, source: str) -> tuple[yaml.Node, dict]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise TaxonomyError(
                source, 1, "",
                f'the file is empty, not a taxonomy. A taxonomy needs "version:" and "fields:"; {START_FROM_SHIPPED}.',
            )
        _check_no_duplicate_keys(root, source, ())
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context
        if error.context and problem.startswith("but "):  # yaml splits "expected X" / "but found Y"
            problem = f"{error.context} {problem}"
        raise TaxonomyError(
            source, mark.line + 1, "",
            f"YAML syntax error: {problem} (column {mark.column + 1}). Check the indentation, and quote "
            'text that contains ": " or starts with a special character.',
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise TaxonomyError(
            source, root.start_mark.line + 1, "",
            f'the top level is {_describe(data)}, not a taxonomy. A taxonomy is a mapping with "version:" '
            f'and "fields:" at the top; {START_FROM_SHIPPED}.',
        )
    return root, data


def _check_no_duplicate_keys(node: yaml.Node, source: str, loc: tuple) -> None:
    # YAML keeps the last of two equal keys and drops the first without a word.
    if isinstance(node, yaml.MappingNode):
        first_lines: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if key.value in first_lines:
                raise TaxonomyError(
                    source, line, _format_path(loc + (key.value,)),
                    f"key appears twice (lines {first_lines[key.value]} and {line}). "
                    "YAML would silently keep only the last one; delete or rename one of them.",
                )
            first_lines[key.value] = line
            _check_no_duplicate_keys(value, source, loc + (key.value,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_no_duplicate_keys(item, source, loc + (index,))


def _check_unique_disciplines(taxonomy: Taxonomy, source: str, root: yaml.Node) -> None:
    seen: dict[str, tuple[tuple, Discipline]] = {}
    for i, field in enumerate(taxonomy.fields):
        for j, subfield in enumerate(field.subfields):
            for k, discipline in enumerate(subfield.disciplines):
                loc = ("fields", i, "subfields", j, "disciplines", k)
                if discipline.discipline_id not in seen:
                    seen[discipline.discipline_id] = (loc, discipline)
                    continue
                first_loc, first = seen[discipline.discipline_id]
                first_line = _locate(root, first_loc)
                if discipline.id is not None:
                    raise TaxonomyError(
                        source, _locate(root, loc + ("id",)), _format_path(loc + ("id",)),
                        f'id "{discipline.id}" is already used on line {first_line} by "{first.name}". '
                        "Ids are unique; pick another id.",
                    )
                raise TaxonomyError(
                    source, _locate(root, loc), _format_path(loc),
                    f'duplicate discipline "{discipline.name}" (id {discipline.discipline_id}), already on line '
                    f"{first_line}. Delete one, or give each a distinct \"id:\" if they are different disciplines.",
                )


def _check_discipline_ids(
    taxonomy: Taxonomy, settings: Generation, source: str, root: yaml.Node, prefix: tuple
) -> None:
    known = [ref.discipline_id for ref in taxonomy.disciplines()]
    for index, discipline_id in enumerate(settings.discipline_ids or []):
        if discipline_id in known:
            continue
        loc = prefix + ("discipline_ids", index)
        close = difflib.get_close_matches(discipline_id, known, n=1)
        hint = f'Did you mean "{close[0]}"?' if close else f'Use a discipline_id of this taxonomy, e.g. "{known[0]}".'
        message = f'unknown discipline id "{discipline_id}". {hint}'
        raise TaxonomyError(source, _locate(root, loc), _format_path(loc), message)


# ---- mapping pydantic errors to lines ---------------------------------------------------------


def _locate(root: yaml.Node, loc: tuple) -> int:
    """Line of the deepest node on loc that the file has: a key's own line, or a list item's first line."""
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            keys = [key.value if isinstance(key, yaml.ScalarNode) else None for key, _ in node.value]
            if str(part) not in keys:
                return line
            key, node = node.value[keys.index(str(part))]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _format_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            path += f".{part}" if path else part
        else:
            path += f'["{part}"]'
    return path


def _model_at(model: type[BaseModel], loc: tuple) -> type[_Node] | None:
    """The model class that validates the value at loc, or None for plain values."""
    current: Any = model
    for part in loc:
        current = _without_none(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
    current = _without_none(current)
    return current if isinstance(current, type) and issubclass(current, _Node) else None


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


EXPECTED = {
    "string_type": ("text", 'Quote it where YAML would read a number or a boolean, e.g. "1984" or "yes"'),
    "int_type": ("a whole number", "Write digits only, e.g. 10"),
    "int_parsing": ("a whole number", "Write digits only, e.g. 10"),
    "int_from_float": ("a whole number", "Write digits only, e.g. 10"),
    "float_type": ("a number", "Write a number, e.g. 0.5"),
    "float_parsing": ("a number", "Write a number, e.g. 0.5"),
    "bool_type": ("true or false", "Write true or false"),
    "bool_parsing": ("true or false", "Write true or false"),
    "list_type": ("a list", 'Write one item per line, each starting with "- "'),
    "dict_type": ("a mapping", 'Write "key: value" lines indented under it'),
    "model_type": ("a mapping", 'Write "key: value" lines indented under it'),
}
EMPTY_LIST_HINTS = {
    "fields": "A taxonomy needs at least one field; add one",
    "subfields": "A field needs at least one sub-field; add one or delete the field",
    "disciplines": "A sub-field needs at least one discipline; add one or delete the sub-field",
    "levels": "List at least one level, e.g. [introductory, advanced]",
    "discipline_ids": "List the discipline ids to generate, or write null for all of them",
}


def _message(error: dict, model: type[BaseModel]) -> str:
    loc, kind, value = error["loc"], error["type"], error.get("input")
    key = loc[-1] if loc else ""
    if kind == "taxonomy":
        return error["msg"] + "."
    if kind == "missing":
        parent = _model_at(model, loc[:-1])
        noun = parent.noun if parent else "mapping"
        if key == "name" and parent and parent.name_example:
            return f'missing. Every {noun} needs a name, e.g. "name: {parent.name_example}".'
        return f'missing. Every {noun} needs "{key}:"; add it.'
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f'Did you mean "{close[0]}"? ' if close else ""
        return f'unknown key "{key}". {hint}Allowed keys here: {", ".join(allowed)}.'
    if kind == "too_short":
        return f"empty. {EMPTY_LIST_HINTS.get(key, 'Add at least one item')}."
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {_describe(value)}. Use one of those values."
    if kind in EXPECTED:
        expected, fix = EXPECTED[kind]
        if value is None:
            fix = "Fill in a value, or delete the line to use the default"
        return f"expected {expected}, got {_describe(value)}. {fix}."
    bounds = error.get("ctx", {})
    if kind in ("greater_than_equal", "greater_than"):
        bound = bounds.get("ge", bounds.get("gt"))
        relation = "at least" if kind == "greater_than_equal" else "greater than"
        return f"{value} is too small. It must be {relation} {bound}."
    if kind in ("less_than_equal", "less_than"):
        bound = bounds.get("le", bounds.get("lt"))
        relation = "at most" if kind == "less_than_equal" else "less than"
        return f"{value} is too large. It must be {relation} {bound}."
    return f"{error['msg']}. Compare with the taxonomy.yaml shipped with glan."


def _first_problem(
    error: ValidationError, model: type[BaseModel], source: str | None, root: yaml.Node | None, prefix: tuple
) -> TaxonomyError:
    """The problem written earliest in the file: users fix files top-down."""
    problems = []
    for details in error.errors():
        loc = prefix + tuple(details["loc"])
        line = _locate(root, loc) if root is not None else None
        problems.append((line or 0, loc, details))
    line, loc, details = min(problems, key=lambda problem: problem[0])
    return TaxonomyError(source, line or None, _format_path(loc), _message(details, model))


# ---- diff ----------------------------------------------------------------------------------------


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()  # the old or new side of a setting that one of the two files does not have


@dataclass(frozen=True)
class SettingChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class TaxonomyDiff:
    old_version: str
    new_version: str
    added: list[DisciplineRef]
    removed: list[DisciplineRef]
    renamed: list[tuple[DisciplineRef, DisciplineRef]]
    moved: list[tuple[DisciplineRef, DisciplineRef]]
    redescribed: list[tuple[DisciplineRef, DisciplineRef]]
    settings: list[SettingChange]

    @property
    def is_empty(self) -> bool:
        return self.old_version == self.new_version and not any(
            (self.added, self.removed, self.renamed, self.moved, self.redescribed, self.settings)
        )


def diff_taxonomies(old: Taxonomy, new: Taxonomy) -> TaxonomyDiff:
    old_refs = {ref.discipline_id: ref for ref in old.disciplines()}
    new_refs = {ref.discipline_id: ref for ref in new.disciplines()}
    kept = [(old_refs[key], ref) for key, ref in new_refs.items() if key in old_refs]
    return TaxonomyDiff(
        old_version=old.version,
        new_version=new.version,
        added=[ref for key, ref in new_refs.items() if key not in old_refs],
        removed=[ref for key, ref in old_refs.items() if key not in new_refs],
        renamed=[(before, after) for before, after in kept if before.discipline != after.discipline],
        moved=[(before, after) for before, after in kept if _place(before) != _place(after)],
        redescribed=[(before, after) for before, after in kept if before.description != after.description],
        settings=_setting_changes(
            {"generation": old.generation.model_dump(), "presets": old.presets},
            {"generation": new.generation.model_dump(), "presets": new.presets},
        ),
    )


def _setting_changes(old: Any, new: Any, loc: tuple = ()) -> list[SettingChange]:
    """Leaf paths that differ; a mapping entry only one side has is one change (e.g. a new price)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = dict.fromkeys([*old, *new])
        return [
            change
            for key in keys
            for change in _setting_changes(old.get(key, ABSENT), new.get(key, ABSENT), loc + (key,))
        ]
    return [] if old == new else [SettingChange(_format_path(loc), old, new)]


def _place(ref: DisciplineRef) -> str:
    return f"{ref.field} / {ref.subfield}"


def format_diff(diff: TaxonomyDiff) -> str:
    def shown(value: Any) -> str:
        return repr(value) if value is ABSENT else json.dumps(value)

    lines = [f"taxonomy {diff.old_version} -> {diff.new_version}"]
    if diff.is_empty:
        return lines[0] + ": no changes"
    sections = [
        ("added", diff.added, lambda ref: f'+ {ref.discipline_id}: "{ref.discipline}" in {_place(ref)}'),
        ("removed", diff.removed, lambda ref: f'- {ref.discipline_id}: "{ref.discipline}" in {_place(ref)}'),
        ("renamed", diff.renamed, lambda pair: f'~ {pair[1].discipline_id}: "{pair[0].discipline}" -> "{pair[1].discipline}"'),
        ("moved", diff.moved, lambda pair: f"> {pair[1].discipline_id}: {_place(pair[0])} -> {_place(pair[1])}"),
        ("description changed", diff.redescribed, lambda pair: f"~ {pair[1].discipline_id}"),
        ("settings changed", diff.settings, lambda item: f"~ {item.path}: {shown(item.old)} -> {shown(item.new)}"),
    ]
    for title, items, render in sections:
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {render(item)}" for item in items)
    if diff.old_version == diff.new_version:
        lines.append(
            f"note: the taxonomy changed but its version is still {diff.new_version}; bump it before publishing."
        )
    return "\n".join(lines)


# ---- command ------------------------------------------------------------------------------------


def validate_command(path: str | Path) -> int:
    """`glan taxonomy validate PATH`: exit 0 with a one-line summary, or 2 with the error on stderr."""
    try:
        taxonomy = load_taxonomy(path)
    except TaxonomyError as error:
        print(error, file=sys.stderr)
        return 2
    subfields = sum(len(field.subfields) for field in taxonomy.fields)
    presets = ", ".join(sorted(taxonomy.presets)) or "none"
    print(
        f"{path}: version {taxonomy.version}, {len(taxonomy.fields)} fields, {subfields} sub-fields, "
        f"{len(taxonomy.disciplines())} disciplines, presets: {presets}"
    )
    return 0
