"""Choosing disciplines (`--disciplines`, glan_dataset's `disciplines`): each selector is a discipline's name or id, a
pattern over "Field/Sub-field/Discipline" or ids (`Mathematics/*`, `*/Chemistry/*`, `*-chemistry`), a
comma-separated list of those, or `@FILE` (one selector a line; blank lines and `#` comments skipped).

A name may hold commas ("Fractions, Decimals and Percentages"): a selector is first matched whole, and a list is
split only where its parts do not join into a name. A selector that matches nothing is an error that names the
closest names and ids (difflib), never an empty build.
"""

from __future__ import annotations

import difflib
import errno
import fnmatch
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from ..config.yamlfile import TaxonomyError
from .model import DisciplineRef, Taxonomy

PATTERN_CHARS = "*?["
MAX_LIST_BYTES = 1 << 20  # an @FILE: some 20,000 discipline names
_AROUND_COMMA = re.compile(r" ?, ?")


def select_disciplines(taxonomy: Taxonomy, selectors: Sequence[str], source: str) -> list[DisciplineRef]:
    """The disciplines `selectors` name, in taxonomy order, each once; `source` (the taxonomy file) names errors."""
    every = taxonomy.disciplines()
    index = _Index(every)
    chosen: set[str] = set()
    for selector in _expanded(selectors, source):
        chosen.update(ref.discipline_id for ref in _matches(index, selector, source))
    if not chosen:  # "", ",,", a file of comments: a build of nothing is no build
        raise TaxonomyError(
            source, None, "--disciplines", f"{', '.join(map(repr, selectors))} names no discipline. Name at least one."
        )
    return [ref for ref in every if ref.discipline_id in chosen]


def discipline_path(ref: DisciplineRef) -> str:
    """ "Field/Sub-field/Discipline", what a pattern matches (and `glan taxonomy list` shows)."""
    return f"{ref.field}/{ref.subfield}/{ref.discipline}"


def _expanded(selectors: Sequence[str], source: str) -> list[str]:
    expanded = []
    for selector in selectors:
        if selector.startswith("@"):
            expanded += _read_list(Path(selector[1:]), source)
        elif selector.strip():
            expanded.append(selector)
    return expanded


def _read_list(path: Path, source: str) -> list[str]:
    try:
        # A regular file of a bounded size: @/dev/zero filled memory, a FIFO waited forever.
        if not stat.S_ISREG(path.stat().st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with path.open("rb") as file:
            data = file.read(MAX_LIST_BYTES + 1)
        if len(data) > MAX_LIST_BYTES:
            raise OSError(errno.EFBIG, f"more than {MAX_LIST_BYTES:,} bytes")
        lines = data.decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise TaxonomyError(
            source,
            None,
            "--disciplines",
            f"@{path}: cannot read it ({reason}). Name a text file of one discipline a line.",
        ) from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _normal(text: str) -> str:
    """Case and spacing aside ("Fractions,Decimals  and percentages" is the name with a comma)."""
    return _AROUND_COMMA.sub(",", " ".join(text.split())).casefold()


class _Index:
    """The disciplines as selectors match them, normalized once per selection: a list of ids can be tried as some
    P^2 / 2 runs of its P parts, and normalizing every name and path for each was most of resolving 149 ids."""

    def __init__(self, every: list[DisciplineRef]):
        self.every = every
        self.paths = [_normal(discipline_path(ref)) for ref in every]  # what a pattern matches, besides the id
        # The most comma-separated parts a name or path has: no longer run of a list's parts can name anything.
        self.most_parts = 1 + max((path.count(",") for path in self.paths), default=0)
        self.named: dict[str, list[DisciplineRef]] = {}  # a name (normalized) or an id -> its disciplines, in order
        for ref in every:
            for key in dict.fromkeys((_normal(ref.discipline), ref.discipline_id)):
                self.named.setdefault(key, []).append(ref)


def _matches(index: _Index, selector: str, source: str) -> list[DisciplineRef]:
    """What one selector names: itself whole, else its comma-separated parts, each joined with the parts after it
    into the longest run that names something."""
    found = _whole(index, selector)
    if found:
        return found
    parts = selector.split(",")
    matched: list[DisciplineRef] = []
    start = 0
    while start < len(parts):
        for end in range(min(len(parts), start + index.most_parts), start, -1):
            if found := _whole(index, ",".join(parts[start:end])):
                matched += found
                start = end
                break
        else:
            part = parts[start].strip()
            if part:
                raise TaxonomyError(source, None, "--disciplines", _miss(index.every, part))
            start += 1
    return matched


def _whole(index: _Index, selector: str) -> list[DisciplineRef]:
    wanted = _normal(selector)
    if not wanted:
        return []
    if any(char in wanted for char in PATTERN_CHARS):
        return [
            ref
            for ref, path in zip(index.every, index.paths, strict=True)
            if fnmatch.fnmatchcase(path, wanted) or fnmatch.fnmatchcase(ref.discipline_id, wanted)
        ]
    return list(index.named.get(wanted, ()))


def _miss(every: list[DisciplineRef], selector: str) -> str:
    if any(char in selector for char in PATTERN_CHARS):
        return (
            f'no discipline matches "{selector}". A pattern matches "Field/Sub-field/Discipline" or an id, e.g. '
            '"Mathematics/*" or "*-chemistry"; `glan taxonomy list` lists them.'
        )
    # A close name or a close id suggests the discipline's name, once.
    names = {_normal(ref.discipline): ref.discipline for ref in every} | {
        ref.discipline_id: ref.discipline for ref in every
    }
    close = dict.fromkeys(
        names[match] for match in difflib.get_close_matches(_normal(selector), list(names), n=6, cutoff=0.8)
    )
    quoted = " or ".join(f'"{name}"' for name in list(close)[:3])
    hint = f" Did you mean {quoted}?" if close else ""
    return f'no discipline named "{selector}".{hint} `glan taxonomy list` lists every name and id.'


def disciplines_under(taxonomy: Taxonomy, under: str, source: str) -> list[DisciplineRef]:
    """The disciplines under "Field" or "Field/Sub-field" (any case), or every one for ""; a miss names the closest
    fields and sub-fields."""
    every = taxonomy.disciplines()
    wanted = "/".join(_normal(part) for part in under.split("/"))
    if not wanted:
        return every
    found = [ref for ref in every if f"{_normal(ref.field)}/{_normal(ref.subfield)}/".startswith(f"{wanted}/")]
    if found:
        return found
    places = {_normal(ref.field): ref.field for ref in every} | {
        f"{_normal(ref.field)}/{_normal(ref.subfield)}": f"{ref.field}/{ref.subfield}" for ref in every
    }
    close = difflib.get_close_matches(wanted, list(places), n=3, cutoff=0.6)
    quoted = " or ".join(f'"{places[match]}"' for match in close)
    hint = f" Did you mean {quoted}?" if close else ""
    raise TaxonomyError(
        source, None, "--under", f'no field or sub-field "{under}".{hint} Write "Field" or "Field/Sub-field".'
    )
