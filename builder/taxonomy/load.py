"""Loading taxonomy.yaml: YAML with line numbers, the models, and the checks that span several nodes."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..config.base import describe
from ..config.settings import Generation
from ..config.yamlfile import (
    START_FROM_SHIPPED,
    TaxonomyError,
    collector_paused,
    first_problem,
    format_path,
    locate,
    parse_yaml,
    read_text,
)
from .card_template import template_problem
from .model import Discipline, Taxonomy


def load_taxonomy(path: str | Path) -> Taxonomy:
    source = str(path)
    text = read_text(Path(path), TaxonomyError, f"Pass the path of a taxonomy YAML, or {START_FROM_SHIPPED}.")
    with collector_paused():
        return _taxonomy(text, source)


def _taxonomy(text: str, source: str) -> Taxonomy:
    root, data = parse_yaml(text, source)
    if root is None:
        raise TaxonomyError(
            source,
            1,
            "",
            f'the file is empty, not a taxonomy. A taxonomy needs "version:" and "fields:"; {START_FROM_SHIPPED}.',
        )
    if not isinstance(data, dict):
        raise TaxonomyError(
            source,
            root.start_mark.line + 1,
            "",
            f'the top level is {describe(data)}, not a taxonomy. A taxonomy is a mapping with "version:" '
            f'and "fields:" at the top; {START_FROM_SHIPPED}.',
        )
    try:
        taxonomy = Taxonomy.model_validate(data)
    except ValidationError as error:
        raise first_problem(error, Taxonomy, source, root, ()) from None
    # settings(preset) names lines later; keeping only the presets' nodes keeps a large file's tree out of memory
    presets = [(key, value) for key, value in root.value if getattr(key, "value", None) == "presets"]
    taxonomy._source, taxonomy._root = source, yaml.MappingNode(root.tag, presets, root.start_mark, None)
    _check_unique_disciplines(taxonomy, source, root)
    _check_card(taxonomy, Path(source), root)
    _check_discipline_ids(taxonomy, taxonomy.generation, source, root, ("generation",))
    for preset in taxonomy.presets:
        _check_discipline_ids(taxonomy, taxonomy.settings(preset), source, root, ("presets", preset))
    return taxonomy


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
                first_line = locate(root, first_loc)
                if discipline.id is not None:
                    raise TaxonomyError(
                        source,
                        locate(root, loc + ("id",)),
                        format_path(loc + ("id",)),
                        f'id "{discipline.id}" is already used on line {first_line} by "{first.name}". '
                        "Ids are unique; pick another id.",
                    )
                raise TaxonomyError(
                    source,
                    locate(root, loc),
                    format_path(loc),
                    f'duplicate discipline "{discipline.name}" (id {discipline.discipline_id}), already on line '
                    f'{first_line}. Delete one, or give each a distinct "id:" if they are different disciplines.',
                )


def _check_card(taxonomy: Taxonomy, path: Path, root: yaml.Node) -> None:
    card, source = taxonomy.card, str(path)
    for key in ("license_name", "license_link"):
        if getattr(card, key) is not None and taxonomy.license != "other":
            loc = ("card", key)
            raise TaxonomyError(
                source,
                locate(root, loc),
                format_path(loc),
                f'applies only to "license: other"; this taxonomy declares "license: {taxonomy.license}", a license '
                'the Hub knows by its id. Delete it, or write "license: other".',
            )
    if card.template is None:
        return
    loc = ("card", "template")
    where = (source, locate(root, loc), format_path(loc))
    template = Path(card.template)
    if template.is_absolute() or ".." in template.parts:
        raise TaxonomyError(
            *where,
            f'"{card.template}" is outside the taxonomy\'s folder. Put the template beside '
            "taxonomy.yaml (a release carries it there) and write its relative path.",
        )
    try:
        text = (path.parent / template).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(
            *where,
            f"{path.parent / template}: no such file. Write the path of a card template "
            "relative to taxonomy.yaml, or delete the key to use glan's own.",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise TaxonomyError(*where, f"{path.parent / template}: cannot read it ({error}).") from None
    if problem := template_problem(text):
        raise TaxonomyError(*where, f"{path.parent / template}: {problem}.")


def _check_discipline_ids(
    taxonomy: Taxonomy, settings: Generation, source: str, root: yaml.Node, prefix: tuple
) -> None:
    if not settings.discipline_ids:
        return
    known = [ref.discipline_id for ref in taxonomy.disciplines()]
    for index, discipline_id in enumerate(settings.discipline_ids):
        if discipline_id in known:
            continue
        loc = prefix + ("discipline_ids", index)
        close = difflib.get_close_matches(discipline_id, known, n=1)
        hint = f'Did you mean "{close[0]}"?' if close else f'Use a discipline_id of this taxonomy, e.g. "{known[0]}".'
        message = f'unknown discipline id "{discipline_id}". {hint}'
        raise TaxonomyError(source, locate(root, loc), format_path(loc), message)
