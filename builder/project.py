"""A glan project: a taxonomy.yaml with its prompts/ beside it (and the card template it may name).

glan ships one (builder/defaults/, links to the repository's own taxonomy.yaml and prompts/ that the
wheel holds as copies): `glan init` writes it out to edit, and a taxonomy with no prompts/ beside it
uses the shipped prompts. Every release carries the project that made it under `glan/` (INPUTS_DIR),
so `glan pull` gives anyone the files to rebuild or extend it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import UserError

SHIPPED = Path(__file__).parent / "defaults"
SHIPPED_TAXONOMY = SHIPPED / "taxonomy.yaml"
SHIPPED_PROMPTS = SHIPPED / "prompts"
TAXONOMY = "taxonomy.yaml"
PROMPTS = "prompts"
INPUTS_DIR = "glan"  # where a release holds the taxonomy, prompts and card template that made it


class ProjectError(UserError):
    """A project directory that cannot be written; str(e) says which file and what to do."""


def prompts_dir(taxonomy: str | Path, prompts: str | Path | None = None) -> Path:
    """`prompts` if given, else the prompts/ beside the taxonomy, else the prompts shipped with glan."""
    if prompts is not None:
        return Path(prompts)
    beside = Path(taxonomy).parent / PROMPTS
    return beside if beside.is_dir() else SHIPPED_PROMPTS


def init_project(directory: str | Path) -> list[Path]:
    """Write the shipped taxonomy.yaml and prompts/ into `directory`; never overwrites a file."""
    files: dict[str, Path | bytes] = {TAXONOMY: SHIPPED_TAXONOMY}
    files.update({f"{PROMPTS}/{path.name}": path for path in sorted(SHIPPED_PROMPTS.glob("*.yaml"))})
    return write_project(directory, files)


def write_project(directory: str | Path, files: Mapping[str, Path | bytes]) -> list[Path]:
    """Write `files` (a relative path: a source file or bytes) into `directory`; returns the paths written.

    Each file lands where its path says, inside `directory`, and nowhere else: the path must be relative and
    plain (relative_path_problem), no folder on its way may be a symbolic link (one already there included),
    and no file may exist. Everything is checked before anything is written.
    """
    directory = Path(directory)
    root = directory.resolve()
    targets = {}
    for relative in files:
        if problem := relative_path_problem(relative):
            raise ProjectError(f"{relative!r}: {problem}. glan writes a project's files only inside its directory.")
        target = directory.joinpath(*relative.split("/"))
        for step in (directory.joinpath(*relative.split("/")[:depth]) for depth in range(1, relative.count("/") + 2)):
            if step.is_symlink():
                raise ProjectError(
                    f"{step}: a symbolic link; glan never writes a project file through one. Pick an "
                    "empty directory, or remove the link."
                )
        if target.exists():
            raise ProjectError(
                f"{target}: already exists. Pick an empty directory, or move the file away; "
                "glan never overwrites a project file."
            )
        if not target.parent.resolve().is_relative_to(root):
            raise ProjectError(f"{target}: outside {directory} once resolved. Pick an empty directory.")
        targets[relative] = target
    for relative, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        source = files[relative]
        data = source if isinstance(source, bytes) else source.read_bytes()
        # O_EXCL and O_NOFOLLOW: a file or link that appeared since the check is not written through
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "wb") as file:
            file.write(data)
    return list(targets.values())


def relative_path_problem(relative: str) -> str | None:
    """Why `relative` (a path with / between its parts, from a release or a file) is not a plain path inside a
    folder, or None: it must not be absolute, name a drive, climb out (..), or hold an empty or control-character
    part."""
    parts = relative.split("/")
    if relative.startswith("/") or "\\" in relative or ":" in relative:
        return "not a plain relative path (absolute, a drive, or a backslash)"
    for part in parts:
        if part in ("", ".", ".."):
            return "not a plain relative path (an empty, . or .. part)"
        if not part.isprintable() or len(part.encode()) > 255:
            return "a part of the path is not a plain file name"
    return None


def release_inputs(taxonomy: str | Path, prompts: Path, card_template: str | None) -> dict[str, Path]:
    """The files a release publishes under glan/, by their path in the release."""
    taxonomy = Path(taxonomy)
    inputs = {f"{INPUTS_DIR}/{TAXONOMY}": taxonomy}
    inputs.update({f"{INPUTS_DIR}/{PROMPTS}/{path.name}": path for path in sorted(prompts.glob("*.yaml"))})
    if card_template:
        inputs[f"{INPUTS_DIR}/{card_template}"] = taxonomy.parent / card_template
    return inputs
