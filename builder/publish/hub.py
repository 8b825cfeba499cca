"""Publish an exported folder to the Hub: one release is one commit and one tag.

A release preuploads every changed shard (LFS), then makes ONE `create_commit` with all configs'
shards, glan_manifest.json, the re-rendered card and the deletion of stale files, then tags the commit
`v<taxonomy version>`. `upload_folder`/`push_to_hub` would split a large release into several commits,
so a reader could see half a release; here a failure anywhere before the commit leaves the repo at its
previous commit (the uploaded LFS objects are unreferenced), and `parent_commit` makes the commit fail
rather than overwrite a concurrent one.

Content is compared by hash (LFS sha256, git blob sha1 for small files) with the repo: pushing the
same release again makes no commit, and different content under a version that is already tagged is
refused. Nothing but the manifest's shards, the files beside the manifest (glan_manifest.json,
stats.json) and the card is uploaded; in particular no `*.py`: datasets >= 4 refuses any repo that
holds a loading script.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path, PurePosixPath

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.hf_api import RepoFile
from packaging.version import InvalidVersion, Version

from .card import CardError, render_card
from .export import MANIFEST

CARD = "README.md"
REPO_TYPE = "dataset"


class PushError(Exception):
    """The folder or the requested release is refused; str(e) says why and what to do (CLI exit 2)."""


@dataclasses.dataclass
class PushResult:
    repo_id: str
    revision: str
    tag: str
    commit_oid: str | None  # None: the repo already held this release, nothing was committed
    commit_url: str | None
    pr_url: str | None
    tag_created: bool
    added: list[str]  # paths uploaded (new or changed)
    deleted: list[str]  # stale paths removed

    def summary(self) -> str:
        lines = []
        if self.commit_oid is None:
            lines.append(f"{self.repo_id}@{self.revision} already holds this release: no commit.")
        else:
            lines.append(f"commit {self.commit_oid} {self.commit_url}")
            lines.append(f"  {len(self.added)} files added or changed, {len(self.deleted)} deleted")
            lines += [f"  + {path}" for path in self.added] + [f"  - {path}" for path in self.deleted]
        if self.pr_url:
            lines.append(f"pull request {self.pr_url}")
            lines.append(f"not tagged: merge the pull request, then run `glan push` again to tag {self.tag}")
        elif self.tag_created:
            lines.append(f"tag {self.tag} created")
        else:
            lines.append(f"tag {self.tag} already points at this release")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Local:
    """One file of the release: where its bytes are and their two hashes."""

    source: Path | bytes
    sha256: str
    git_oid: str

    @classmethod
    def of(cls, source: Path | bytes) -> _Local:
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
        chunks = [source] if isinstance(source, bytes) else _chunks(source)
        for chunk in chunks:
            sha256.update(chunk)
            sha1.update(chunk)
        return cls(source, sha256.hexdigest(), sha1.hexdigest())

    def same_as(self, remote: RepoFile | None) -> bool:
        if remote is None:
            return False
        if remote.lfs is not None:
            return remote.lfs.sha256 == self.sha256
        return remote.blob_id == self.git_oid


def _chunks(path: Path, size: int = 1 << 20):
    with open(path, "rb") as file:
        while chunk := file.read(size):
            yield chunk


def push(
    folder: str | Path,
    repo_id: str,
    revision: str = "main",
    private: bool = False,
    create_pr: bool = False,
    message: str | None = None,
) -> PushResult:
    """Publish `folder` (the layout builder/publish/export.py writes) as release v<taxonomy version> of dataset repo `repo_id`.

    The token comes from HF_TOKEN or the huggingface_hub login. Raises PushError for a refused release,
    huggingface_hub / network errors for failures (the repo is then unchanged unless a commit was made,
    and pushing again resumes: uploaded shards are not sent twice, a missing tag is created).
    """
    folder = Path(folder)
    manifest = _read_manifest(folder)
    version = manifest["taxonomy_version"]
    tag = f"v{version}"
    local = {path: _Local.of(source) for path, source in _release_files(folder, manifest).items()}
    for path, expected in manifest.get("checksums", {}).items():
        if path in local and local[path].sha256 != expected:
            raise PushError(
                f"{folder / path}: its sha256 differs from checksums.{path} in {folder / MANIFEST}: the file "
                "changed after the export. Re-export the folder."
            )

    api = HfApi()
    api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
    refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    branches = {ref.name: ref.target_commit for ref in refs.branches}
    tags = {ref.name: ref.target_commit for ref in refs.tags}
    if revision not in branches:
        raise PushError(
            f"{repo_id} has no branch {revision!r} (branches: {', '.join(sorted(branches))}). "
            "Push to an existing branch, or create it first (HfApi().create_branch)."
        )
    head = branches[revision]
    head_tree = _tree(api, repo_id, head)
    head_manifest = _manifest_at(api, repo_id, head) if MANIFEST in head_tree else None
    if head_manifest is not None and _version(head_manifest) > Version(version):
        raise PushError(
            f"{repo_id}@{revision} already holds taxonomy version {head_manifest['taxonomy_version']}, newer than "
            f"{version} in {folder / MANIFEST}. Bump `version:` in taxonomy.yaml above it and rebuild."
        )
    previous = _previous_release(api, repo_id, Version(version), tags, head_manifest)
    try:
        card = render_card(manifest, previous, folder, repo_id=repo_id).encode()
    except CardError as error:
        raise PushError(str(error)) from error

    local[CARD] = _Local.of(card)
    managed_dirs = set(manifest["configs"]) | set((head_manifest or {}).get("configs", {}))

    if tag in tags:
        tag_tree = head_tree if tags[tag] == head else _tree(api, repo_id, tags[tag])
        added, deleted = _diff(local, tag_tree, managed_dirs)
        if added or deleted:
            example = sorted(added + deleted, key=lambda path: (path == CARD, path))[0]  # a data file says more
            raise PushError(
                f"{tag} is already published on {repo_id} with different content ({len(added)} files differ, "
                f"{len(deleted)} would be deleted, e.g. {example}). A release is immutable: bump "
                f"`version:` in taxonomy.yaml (now {version}) and rebuild."
            )

    added, deleted = _diff(local, head_tree, managed_dirs)
    commit_oid = commit_url = pr_url = None
    if added or deleted:
        additions = [CommitOperationAdd(path, _source(local[path].source)) for path in added]
        api.preupload_lfs_files(
            repo_id, additions, repo_type=REPO_TYPE, revision=revision, create_pr=create_pr, free_memory=False
        )
        info = api.create_commit(
            repo_id,
            [*additions, *(CommitOperationDelete(path) for path in deleted)],
            commit_message=message or f"Release {tag}",
            commit_description=_description(manifest, previous),
            repo_type=REPO_TYPE,
            revision=revision,
            create_pr=create_pr,
            parent_commit=head,
        )
        commit_oid, commit_url, pr_url = info.oid, info.commit_url, info.pr_url

    tag_created = False
    if tag not in tags and not create_pr:
        try:
            api.create_tag(
                repo_id, tag=tag, revision=commit_oid or head, repo_type=REPO_TYPE, tag_message=f"GLAN {tag}"
            )
        except HfHubHTTPError as error:
            if commit_oid is None:
                raise
            raise RuntimeError(f"committed {commit_oid} but could not create tag {tag}: {error}") from error
        tag_created = True
    return PushResult(repo_id, revision, tag, commit_oid, commit_url, pr_url, tag_created, added, deleted)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise PushError(f"{path}: not found. Export the dataset first (`glan build`), or pass --from DIR.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PushError(f"{path}:{error.lineno}: invalid JSON ({error.msg}). Re-export the folder.") from error
    for key in ("taxonomy_version", "configs"):
        if key not in manifest:
            raise PushError(f"{path}: {key}: missing. Re-export the folder.")
    try:
        Version(manifest["taxonomy_version"])
    except InvalidVersion as error:
        raise PushError(
            f"{path}: taxonomy_version: {manifest['taxonomy_version']!r} is not a version like 1.0.0. "
            "Fix `version:` in taxonomy.yaml and rebuild."
        ) from error
    return manifest


def _release_files(folder: Path, manifest: dict) -> dict[str, Path]:
    """The manifest's parquet files, and the files beside the manifest (glan_manifest.json, stats.json).

    A config folder must hold exactly the files the manifest lists, since load_dataset globs it. The
    folder's README.md is not taken (push renders the card for the repo), nor any *.py or hidden file.
    """
    where = folder / MANIFEST
    shards: dict[str, Path] = {}
    for config, spec in manifest["configs"].items():
        for split, split_spec in spec["splits"].items():
            for relative in split_spec["files"]:
                if relative.endswith(".py") or PurePosixPath(relative).parts[0] != config:
                    raise PushError(
                        f"{where}: configs.{config}.splits.{split}.files: {relative} is not a data file of folder "
                        f"{config}/. Re-export the folder."
                    )
                if not (folder / relative).is_file():
                    raise PushError(
                        f"{where}: configs.{config}.splits.{split}.files: {relative} does not exist in {folder}. "
                        "Re-export the folder."
                    )
                shards[relative] = folder / relative
        config_dir = folder / config
        on_disk = {
            path.relative_to(folder).as_posix()
            for path in config_dir.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        }
        if extra := sorted(on_disk - set(shards)):
            raise PushError(
                f"{folder / extra[0]}: not listed in {where}, but load_dataset would read it. "
                "Delete it or re-export the folder."
            )
    beside = {
        path.name: path
        for path in folder.iterdir()
        if path.is_file() and path.name != CARD and not path.name.startswith(".") and path.suffix != ".py"
    }
    return {**shards, **beside}


def _tree(api: HfApi, repo_id: str, commit: str) -> dict[str, RepoFile]:
    return {
        entry.path: entry
        for entry in api.list_repo_tree(repo_id, recursive=True, revision=commit, repo_type=REPO_TYPE)
        if isinstance(entry, RepoFile)
    }


def _manifest_at(api: HfApi, repo_id: str, commit: str) -> dict | None:
    try:
        path = api.hf_hub_download(repo_id, MANIFEST, repo_type=REPO_TYPE, revision=commit)
    except EntryNotFoundError:
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _version(manifest: dict) -> Version:
    return Version(manifest["taxonomy_version"])


def _previous_release(
    api: HfApi, repo_id: str, version: Version, tags: dict[str, str], head_manifest: dict | None
) -> dict | None:
    """The manifest of the newest tagged release older than `version` (else the branch's, if older).

    Anchoring the changelog on tags, not on the branch head, keeps the card of a release the same
    however often it is pushed.
    """
    older = []
    for name, commit in tags.items():
        try:
            tagged = Version(name.removeprefix("v"))
        except InvalidVersion:
            continue
        if name.startswith("v") and tagged < version:
            older.append((tagged, commit))
    if older:
        return _manifest_at(api, repo_id, max(older)[1])
    if head_manifest is not None and _version(head_manifest) < version:
        return head_manifest
    return None


def _diff(local: dict[str, _Local], remote: dict[str, RepoFile], managed_dirs: set[str]) -> tuple[list[str], list[str]]:
    """(paths to upload, paths to delete): stale files are those in a config folder or any *.py."""
    added = sorted(path for path, item in local.items() if not item.same_as(remote.get(path)))
    deleted = sorted(
        path
        for path in remote
        if path not in local and (PurePosixPath(path).parts[0] in managed_dirs or path.endswith(".py"))
    )
    return added, deleted


def _source(source: Path | bytes) -> str | bytes:
    return str(source) if isinstance(source, Path) else source


def _description(manifest: dict, previous: dict | None) -> str:
    rows = ", ".join(
        f"{name}: {sum(split['num_rows'] for split in spec['splits'].values())}"
        for name, spec in manifest["configs"].items()
    )
    since = f"previous release: v{previous['taxonomy_version']}" if previous else "first release"
    return f"GLAN taxonomy v{manifest['taxonomy_version']} ({since}). Rows per config: {rows}."
