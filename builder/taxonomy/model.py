"""The taxonomy tree (fields -> sub-fields -> disciplines) with its generation settings and presets."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..config.base import MAX_NAME_CHARS, Named, Node, describe, problem
from ..config.settings import Generation
from ..config.yamlfile import TaxonomyError, first_problem, locate

ID_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")  # what the Hub accepts: ISO 639 codes, e.g. en, zh-Hans
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """ "Fractions, Decimals & Percentages" -> "fractions-decimals-percentages" (accents folded to ASCII)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")


class Discipline(Named):
    noun: ClassVar[str] = "discipline"
    name_example: ClassVar[str] = "Organic Chemistry"
    id: str | None = None
    description: str = ""
    _discipline_id: str = PrivateAttr(default="")  # derived once: every check and every row asks for it

    @field_validator("id")
    @classmethod
    def _is_a_slug(cls, value: str | None) -> str | None:
        if value is not None and not ID_PATTERN.match(value):
            raise problem(
                f'invalid id "{value}". An id is lowercase letters and digits joined by single '
                'hyphens, e.g. "organic-chemistry"'
            )
        if value is not None and len(value) > MAX_NAME_CHARS:
            raise problem(
                f"id of {len(value):,} characters, more than {MAX_NAME_CHARS} (it names the discipline's "
                "files). Write a shorter id"
            )
        return value

    @model_validator(mode="after")
    def _has_an_id(self) -> Discipline:
        self._discipline_id = self.id or slugify(self.name)
        if not self._discipline_id:
            raise problem(
                f'name "{self.name}" has no ASCII letters or digits to make an id from. '
                'Add an explicit id, e.g. "id: my-discipline"'
            )
        if len(self._discipline_id) > MAX_NAME_CHARS:
            raise problem(
                f'the id made from this name ("{self._discipline_id[:40]}...") has '
                f"{len(self._discipline_id):,} characters, more than {MAX_NAME_CHARS} (it names the "
                "discipline's files). Shorten the name, or add a shorter explicit id, e.g. "
                '"id: my-discipline"'
            )
        return self

    @property
    def discipline_id(self) -> str:
        return self._discipline_id


class Subfield(Named):
    noun: ClassVar[str] = "sub-field"
    name_example: ClassVar[str] = "Chemistry"
    disciplines: list[Discipline] = Field(min_length=1)


class KnowledgeField(Named):
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


class CardSection(Node):
    noun: ClassVar[str] = "card section"
    title: str
    body: str


class Card(Node):
    """The dataset card's own words. Texts left out (null) are glan's defaults, see builder/publish/card.md."""

    title: str = "GLAN: Generalized Instruction Tuning data"
    summary: str | None = None
    language: list[str] = Field(default=["en"], min_length=1)
    tags: list[str] = ["synthetic", "glan", "instruction-tuning"]
    license_name: str | None = None  # with `license: other`: the license's name, and a link to its text
    license_link: str | None = None
    uses: str | None = None
    out_of_scope_uses: str | None = None
    limitations: str | None = None
    sections: list[CardSection] = []  # more sections, after glan's own, before the citation
    template: str | None = None  # a card template beside taxonomy.yaml that replaces glan's (checked by load.py)

    @field_validator("language")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not LANGUAGE_PATTERN.match(code):
                raise problem(f'"{code}" is not a language code. Write ISO 639 codes, e.g. [en] or [en, fr]')
        return value


class Taxonomy(Node):
    noun: ClassVar[str] = "taxonomy"
    version: str
    license: str = "other"  # the dataset card's license (a Hub license id)
    card: Card = Card()
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
            raise problem(
                f"expected a version X.Y.Z, got {describe(value)}. "
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
            line = locate(self._root, ("presets",)) if self._root else None
            raise TaxonomyError(
                self._source,
                line,
                "presets",
                f'unknown preset "{preset}". Known presets: {known}; pick one or add "{preset}:" under "presets:".',
            )
        merged = deep_merge(self.generation.model_dump(), self.presets[preset])
        try:
            return Generation.model_validate(merged)
        except ValidationError as error:
            raise first_problem(error, Generation, self._source, self._root, ("presets", preset)) from None


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
