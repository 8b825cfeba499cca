"""`glan pull`: the project a release was made from (its glan/ folder: taxonomy.yaml, prompts/, card
template), written out to rebuild the release or extend it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from ..errors import UserError
from ..project import INPUTS_DIR, TAXONOMY, write_project
from .export import MANIFEST
from .hub import REPO_TYPE


class PullError(UserError):
    """The repo holds no glan project; str(e) says why and what to do (CLI exit 2)."""


@dataclass
class PullResult:
    repo_id: str
    revision: str
    commit: str
    directory: Path
    files: list[str]  # paths written, relative to directory
    manifest: dict

    def summary(self) -> str:
        lines = [f"pulled {self.repo_id}@{self.revision} (commit {self.commit}) into {self.directory}:"]
        lines += [f"  {path}" for path in self.files]
        lines.append(f"Rebuild this release (taxonomy version {self.manifest['taxonomy_version']}):")
        lines.append(f"  cd {self.directory} && {self.manifest['reproduce']['command']}"
                     "   # add --base-url for an endpoint that serves its models")
        lines.append("Extend it: add disciplines to taxonomy.yaml, bump its `version:`, build, then "
                     f"`glan push {self.repo_id}`.")
        return "\n".join(lines)


def pull(repo_id: str, revision: str, directory: str | Path) -> PullResult:
    """Write the glan/ folder of `repo_id` at `revision` into `directory` (taxonomy.yaml at its top).

    Nothing is written when a file would be overwritten. Hub errors (no such repo or revision, no
    access, network) propagate as huggingface_hub errors.
    """
    directory = Path(directory)
    api = HfApi()
    commit = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision).sha
    published = api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision=commit)
    if f"{INPUTS_DIR}/{TAXONOMY}" not in published or MANIFEST not in published:
        raise PullError(f"{repo_id}@{revision}: no {INPUTS_DIR}/{TAXONOMY} and {MANIFEST}: this revision was not "
                        "published by `glan push` (or by a glan older than `glan pull`). Pick another --revision.")
    files = {path.removeprefix(f"{INPUTS_DIR}/"): _download(api, repo_id, path, commit)
             for path in sorted(published) if path.startswith(f"{INPUTS_DIR}/")}
    write_project({directory / relative: source for relative, source in files.items()})
    manifest = json.loads(_download(api, repo_id, MANIFEST, commit).read_text(encoding="utf-8"))
    return PullResult(repo_id, revision, commit, directory, list(files), manifest)


def _download(api: HfApi, repo_id: str, path: str, commit: str) -> Path:
    return Path(api.hf_hub_download(repo_id, path, repo_type=REPO_TYPE, revision=commit))
