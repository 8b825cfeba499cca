"""What changed between two taxonomy files: disciplines added, removed, renamed, moved, redescribed, and settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config.yamlfile import format_path
from .model import DisciplineRef, Taxonomy


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
    return [] if old == new else [SettingChange(format_path(loc), old, new)]


def _place(ref: DisciplineRef) -> str:
    return f"{ref.field} / {ref.subfield}"


def format_diff(diff: TaxonomyDiff) -> str:
    def shown(value: Any) -> str:
        return repr(value) if value is ABSENT else json.dumps(value)

    lines = [f"taxonomy {diff.old_version} -> {diff.new_version}"]
    if diff.is_empty:
        return lines[0] + ": no changes"
    sections: list[tuple[str, list[Any], Callable[[Any], str]]] = [
        ("added", diff.added, lambda ref: f'+ {ref.discipline_id}: "{ref.discipline}" in {_place(ref)}'),
        ("removed", diff.removed, lambda ref: f'- {ref.discipline_id}: "{ref.discipline}" in {_place(ref)}'),
        (
            "renamed",
            diff.renamed,
            lambda pair: f'~ {pair[1].discipline_id}: "{pair[0].discipline}" -> "{pair[1].discipline}"',
        ),
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
