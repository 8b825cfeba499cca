"""`glan pull`: the project a release was made from (its glan/ folder: taxonomy.yaml, prompts/, card
template), written out to rebuild the release or extend it.

A release is untrusted input (anyone can publish one), so pull writes only the files a project is made of:
taxonomy.yaml, prompts/<name>.yaml and the card template the taxonomy names, each at most MAX_FILE_BYTES,
each path plain and relative, written inside DIR through no symbolic link (builder/project.py). Any other
file under glan/ refuses the whole pull, before anything is downloaded or written. The advice it prints is
composed here from checked manifest fields, never copied from the manifest (docs/security.md).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, get_session, hf_hub_url
from huggingface_hub.errors import EntryNotFoundError
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from ..config.yamlfile import TaxonomyError, parse_yaml
from ..errors import UserError
from ..project import INPUTS_DIR, PROMPTS, TAXONOMY, relative_path_problem, write_project
from ..stages import CONFIGS
from .hub import REPO_TYPE
from .manifest import MANIFEST, Manifest, ManifestError, parse_manifest
from .session import bounded_hub_calls

MAX_FILE_BYTES = 4 * 1024 * 1024  # a project file or the manifest; the shipped taxonomy is about 30 kB
REBUILD_FLAGS = ("--preset", "--disciplines", "--configs", "--model", "--seed")  # what a manifest's command names
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


class PullError(UserError):
    """The repo holds no glan project, or one glan refuses to write; str(e) says why and what to do (exit 2)."""


@dataclass
class PullResult:
    repo_id: str
    revision: str
    commit: str
    directory: Path
    files: list[str]  # paths written, relative to directory
    version: str | None  # the release's taxonomy version, when the manifest names a plain one
    command: str | None  # the release's build command, re-composed from checked flags; None when it has none

    def summary(self) -> str:
        lines = [f"pulled {self.repo_id}@{self.revision} (commit {self.commit}) into {self.directory}:"]
        lines += [f"  {path}" for path in self.files]
        version = f" (taxonomy version {self.version})" if self.version else ""
        lines.append(f"Rebuild this release{version}:")
        if self.command:
            lines.append(
                f"  cd {shlex.quote(str(self.directory))} && {self.command}"
                "   # add --base-url for an endpoint that serves its models"
            )
        else:
            lines.append(
                f"  cd {shlex.quote(str(self.directory))} && glan build   # with the flags its card names "
                "(its manifest holds no build command glan writes)"
            )
        lines.append(
            f"Extend it: add disciplines to taxonomy.yaml, bump its `version:`, build, then `glan push {self.repo_id}`."
        )
        return "\n".join(lines)


def pull(repo_id: str, revision: str, directory: str | Path, token: str | None = None) -> PullResult:
    """Write the glan/ folder of `repo_id` at `revision` into `directory` (taxonomy.yaml at its top).

    Nothing is written when a file would be overwritten or any file of glan/ is refused. Hub errors (no such
    repo or revision, no access, network) propagate as huggingface_hub errors. The token is `token`, else HF_TOKEN
    or the huggingface_hub login (for a private repo); it is sent to the Hub and kept nowhere.
    """
    with bounded_hub_calls():
        return _pull(repo_id, revision, Path(directory), token)


def _pull(repo_id: str, revision: str, directory: Path, token: str | None) -> PullResult:
    api = HfApi(token=token)
    where = f"{repo_id}@{revision}"
    commit = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision).sha
    if commit is None:
        raise PullError(f"{where}: the Hub names no commit for this revision. Pick another --revision.")
    try:
        entries = [
            entry
            for entry in api.list_repo_tree(repo_id, INPUTS_DIR, recursive=True, revision=commit, repo_type=REPO_TYPE)
            if isinstance(entry, RepoFile)
        ]
    except EntryNotFoundError:
        entries = []
    sizes = {entry.path.removeprefix(f"{INPUTS_DIR}/"): entry.size for entry in entries}
    if TAXONOMY not in sizes:
        raise PullError(
            f"{where}: no {INPUTS_DIR}/{TAXONOMY}: this revision was not published by `glan push` (or by "
            "a glan older than `glan pull`). Pick another --revision."
        )
    for relative, size in sizes.items():
        _check_file(where, relative, size)
    taxonomy = _fetch(where, repo_id, f"{INPUTS_DIR}/{TAXONOMY}", commit, token)
    allowed = {TAXONOMY, _card_template(where, taxonomy)} | {
        relative for relative in sizes if re.fullmatch(rf"{PROMPTS}/[^/]+\.yaml", relative)
    }
    if refused := sorted(set(sizes) - allowed):
        raise PullError(
            f"{where}: {INPUTS_DIR}/{refused[0]} is not a file of a glan project (taxonomy.yaml, "
            "prompts/*.yaml, the card template taxonomy.yaml names), so glan pull writes nothing from "
            "this revision. Pick another --revision, or read the repo's files yourself."
        )
    files = {
        relative: taxonomy
        if relative == TAXONOMY
        else _fetch(where, repo_id, f"{INPUTS_DIR}/{relative}", commit, token)
        for relative in sorted(sizes)
    }
    try:
        manifest = parse_manifest(_fetch(where, repo_id, MANIFEST, commit, token), f"{where}:{MANIFEST}")
    except (EntryNotFoundError, ManifestError):  # the advice then says less; the project is complete without it
        manifest = None
    write_project(directory, files)
    version = manifest.taxonomy_version if manifest else None
    return PullResult(
        repo_id,
        revision,
        commit,
        directory,
        list(files),
        version if version and _VERSION.match(version) else None,
        rebuild_command(manifest),
    )


def _check_file(where: str, relative: str, size: int) -> None:
    if problem := relative_path_problem(relative):
        raise PullError(
            f"{where}: {f'{INPUTS_DIR}/{relative}'!r}: {problem}, so glan pull writes nothing from this "
            "revision. Pick another --revision."
        )
    if size > MAX_FILE_BYTES:
        raise PullError(
            f"{where}: {INPUTS_DIR}/{relative} is {size:,} bytes, more than a project file may be "
            f"({MAX_FILE_BYTES:,}), so glan pull writes nothing from this revision. Pick another "
            "--revision."
        )


def _fetch(where: str, repo_id: str, path: str, commit: str, token: str | None) -> bytes:
    """The file's bytes, read from the Hub into memory (nothing in a cache), refused as soon as they pass the bound."""
    url = hf_hub_url(repo_id, path, repo_type=REPO_TYPE, revision=commit)
    data = bytearray()
    with get_session().stream("GET", url, headers=build_hf_headers(token=token)) as response:
        if response.status_code >= 400:
            response.read()
        hf_raise_for_status(response)
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_FILE_BYTES:
                raise PullError(
                    f"{where}: {path} holds more than {MAX_FILE_BYTES:,} bytes, more than a file of a "
                    "release may, so glan pull writes nothing from this revision. Pick another --revision."
                )
    return bytes(data)


def _card_template(where: str, taxonomy: bytes) -> str | None:
    """The card template the pulled taxonomy names (`card.template`), or None."""
    try:
        _, data = parse_yaml(taxonomy.decode("utf-8"), f"{where}:{INPUTS_DIR}/{TAXONOMY}")
    except UnicodeDecodeError:
        raise TaxonomyError(
            f"{where}:{INPUTS_DIR}/{TAXONOMY}", None, "", "not UTF-8 text, so not a taxonomy. Pick another --revision."
        ) from None
    card = data.get("card") if isinstance(data, dict) else None
    template = card.get("template") if isinstance(card, dict) else None
    return template if isinstance(template, str) else None


def rebuild_command(manifest: Manifest | None) -> str | None:
    """`glan build` with the flags the manifest's reproduce.command names, each checked and quoted again; None
    when the command is not one glan writes (only REBUILD_FLAGS, each once, with plain values; never --disciplines
    @FILE, which would read a file of the rebuilder's: glan writes the selection's names instead)."""
    command = manifest.reproduce.command if manifest and manifest.reproduce else None
    try:
        words = shlex.split(command) if command is not None else []
    except ValueError:
        return None
    if words[:2] != ["glan", "build"] or len(words) % 2:
        return None
    flags = dict(zip(words[2::2], words[3::2], strict=True))
    if len(flags) != len(words[2:]) // 2 or not set(flags) <= set(REBUILD_FLAGS):
        return None
    if not all(value.isprintable() and 0 < len(value) <= 10_000 for value in flags.values()):
        return None
    if flags.get("--disciplines", "").lstrip().startswith("@"):
        return None
    seed, configs = flags.get("--seed", "0"), flags.get("--configs", CONFIGS[0]).split(",")
    if not (seed.isascii() and seed.isdigit()) or not set(configs) <= set(CONFIGS):
        return None
    return shlex.join(["glan", "build", *(word for pair in flags.items() for word in pair)])
