"""Publish an exported folder to the Hub: one release is one commit and one tag.

A release preuploads every changed shard (LFS), then makes ONE `create_commit` with all configs'
shards, the glan/ inputs (taxonomy.yaml, prompts/, card template), glan_manifest.json, stats.json, the
card and the deletion of stale files, then tags the commit `v<taxonomy version>`.
`upload_folder`/`push_to_hub` would split a large release into several commits, so a reader could see
half a release; here a failure anywhere before the commit leaves the repo at its previous commit (the
uploaded LFS objects are unreferenced), and `parent_commit` makes the commit fail rather than
overwrite a concurrent one.

The card is README.md as the folder holds it (edits included), with the repo id filled in where the
build wrote `<repo_id>`; push checks that its YAML parses and that its `configs` still name the
folder's data files. The commit's description says what changed since the previous release.

Content is compared by hash (LFS sha256, git blob sha1 for small files) with the repo: pushing a
release that is already tagged makes no commit, different content under a tagged version is refused,
and with --create-pr an open pull request that already holds the release is reused. Nothing but the
manifest's shards, its glan/ inputs, the files beside it and the card is uploaded; in particular no
`*.py`: datasets >= 4 refuses any repo that holds a loading script.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path, PurePosixPath

import yaml
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard, HfApi, get_token
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.hf_api import RepoFile
from packaging.version import InvalidVersion, Version

from ..errors import UserError
from ..project import INPUTS_DIR, relative_path_problem
from ..stages import CONFIGS
from ..workdir import folder_held
from .card import REPO_ID, CardError, card_data, markdown_table
from .charts import CHARTS_DIR
from .manifest import MANIFEST, ConfigEntry, Manifest, parse_manifest
from .session import bounded_hub_calls

CARD = "README.md"
REPO_TYPE = "dataset"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PushError(UserError):
    """The folder or the requested release is refused; str(e) says why and what to do (CLI exit 2)."""


@dataclasses.dataclass
class PushResult:
    repo_id: str
    revision: str
    tag: str
    create_pr: bool
    published_as: str | None = None  # the tag's commit, when the tag already held this release: nothing done
    made_private: bool = False
    commit_oid: str | None = None  # None: no commit (already there, or an open pull request holds it)
    commit_url: str | None = None
    pr_url: str | None = None
    tag_created: bool = False
    added: list[str] = dataclasses.field(default_factory=list)  # paths uploaded (new or changed)
    deleted: list[str] = dataclasses.field(default_factory=list)  # stale paths removed

    def summary(self) -> str:
        lines = [f"made {self.repo_id} private (it was public)"] if self.made_private else []
        if self.published_as:
            return "\n".join(
                [
                    *lines,
                    f"{self.repo_id}: already published as {self.tag} (commit {self.published_as}): nothing to do.",
                ]
            )
        if self.commit_oid:
            lines.append(f"commit {self.commit_oid} {self.commit_url}")
            lines.append(f"  {len(self.added)} files added or changed, {len(self.deleted)} deleted")
            lines += [f"  + {path}" for path in self.added] + [f"  - {path}" for path in self.deleted]
            if self.pr_url:
                lines.append(f"pull request {self.pr_url}")
        elif self.pr_url:
            lines.append(f"pull request {self.pr_url} already holds this release: no new pull request.")
        else:
            lines.append(f"{self.repo_id}@{self.revision} already holds this release: no commit.")
        if self.tag_created:
            lines.append(f"tag {self.tag} created")
        elif self.pr_url:
            lines.append(
                f"not tagged: merge the pull request, then run `glan push {self.repo_id}` without "
                f"--create-pr to tag {self.tag}"
            )
        else:
            lines.append(
                f"not tagged: run `glan push {self.repo_id}` without --create-pr to tag {self.tag} "
                "(it needs write access to the repo)"
            )
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
    token: str | None = None,
) -> PushResult:
    """Publish `folder` (the layout builder/publish/export.py writes) as release v<taxonomy version> of dataset repo
    `repo_id`.

    The token is `token`, else HF_TOKEN or the huggingface_hub login; it is sent to the Hub and kept nowhere.
    Raises PushError for a refused release, huggingface_hub / network errors for failures, HubUnreachable when
    the Hub stops answering (the repo is
    then unchanged unless a commit was made, and pushing again resumes: uploaded shards are not sent twice, a
    missing tag is created). The folder is held for the whole push (builder/workdir.py): a build into it
    meanwhile is refused, and so is this push while a build holds it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"{folder}: no such folder. Build the dataset first (`glan build`), or pass --from DIR.")
    with folder_held(folder, "glan push"), bounded_hub_calls():
        return _push(folder, repo_id, revision, private, create_pr, message, token)


def _push(
    folder: Path, repo_id: str, revision: str, private: bool, create_pr: bool, message: str | None, token: str | None
) -> PushResult:
    manifest, manifest_bytes = _read_manifest(folder)
    version = manifest.taxonomy_version
    result = PushResult(repo_id, revision, f"v{version}", create_pr)
    # What is checked is what is uploaded: every file but the shards is read once, here; a shard is hashed here and
    # again before the commit (_check_unchanged).
    local = {path: _Local.of(source) for path, source in _release_files(folder, manifest).items()}
    local[MANIFEST] = _Local.of(manifest_bytes)
    for path, expected in manifest.checksums.items():
        if path in local and local[path].sha256 != expected:
            raise PushError(
                f"{folder / path}: its sha256 differs from checksums.{path} in {folder / MANIFEST}: the file "
                "changed after the export. Re-export the folder."
            )
    local[CARD] = _Local.of(_card(folder, manifest, repo_id))

    if (token or get_token()) is None:
        raise PushError(
            "no Hugging Face token: set HF_TOKEN to a token with write access, run `hf auth login`, or pass --token."
        )
    api = HfApi(token=token)
    result.made_private = _create_repo(api, repo_id, private)
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
    # The folders a release owns on the Hub: what is there and not in this release is deleted. The head's manifest is
    # the Hub's reply: of its configs, only glan's own name a folder.
    managed_dirs = {
        INPUTS_DIR,
        CHARTS_DIR,
        *manifest.configs,
        *(config for config in (head_manifest.configs if head_manifest else {}) if config in CONFIGS),
    }

    if result.tag in tags:
        added, deleted = _diff(
            local, head_tree if tags[result.tag] == head else _tree(api, repo_id, tags[result.tag]), managed_dirs
        )
        if added or deleted:
            example = sorted(added + deleted, key=lambda path: (path == CARD, path))[0]  # a data file says more
            raise PushError(
                f"{result.tag} is already published on {repo_id} with different content ({len(added)} files differ, "
                f"{len(deleted)} would be deleted, e.g. {example}). A release is immutable: bump "
                f"`version:` in taxonomy.yaml (now {version}) and rebuild."
            )
        result.published_as = tags[result.tag]
        return result
    if head_manifest is not None and _version(head_manifest) > Version(version):
        raise PushError(
            f"{repo_id}@{revision} already holds taxonomy version {head_manifest.taxonomy_version}, newer than "
            f"{version} in {folder / MANIFEST}, and {result.tag} was never published. Bump `version:` in "
            "taxonomy.yaml above it and rebuild."
        )

    added, deleted = _diff(local, head_tree, managed_dirs)
    if create_pr and (added or deleted):
        result.pr_url = _open_pull_request(api, repo_id, local, managed_dirs)
    if (added or deleted) and result.pr_url is None:
        additions = [CommitOperationAdd(path, _source(local[path].source)) for path in added]
        api.preupload_lfs_files(
            repo_id, additions, repo_type=REPO_TYPE, revision=revision, create_pr=create_pr, free_memory=False
        )
        _check_unchanged(local, additions)
        previous = _previous_release(api, repo_id, Version(version), tags, head_manifest)
        info = api.create_commit(
            repo_id,
            [*additions, *(CommitOperationDelete(path) for path in deleted)],
            commit_message=message or f"Release {result.tag}",
            commit_description=changelog(manifest, previous),
            repo_type=REPO_TYPE,
            revision=revision,
            create_pr=create_pr,
            parent_commit=head,
        )
        result.commit_oid, result.commit_url, result.pr_url = info.oid, info.commit_url, info.pr_url
        result.added, result.deleted = added, deleted

    if not create_pr:
        try:
            api.create_tag(
                repo_id,
                tag=result.tag,
                revision=result.commit_oid or head,
                repo_type=REPO_TYPE,
                tag_message=f"GLAN {result.tag}",
            )
        except HfHubHTTPError as error:
            if result.commit_oid is None:
                raise
            raise RuntimeError(
                f"committed {result.commit_oid} but could not create tag {result.tag}: {error}"
            ) from error
        result.tag_created = True
    return result


def _create_repo(api: HfApi, repo_id: str, private: bool) -> bool:
    """Create the repo if it is missing (private with --private, else the account's default visibility);
    with --private, make an existing public repo private. True when an existing repo was made private."""
    api.create_repo(repo_id, repo_type=REPO_TYPE, private=True if private else None, exist_ok=True)
    if private and not api.repo_info(repo_id, repo_type=REPO_TYPE).private:
        api.update_repo_settings(repo_id, private=True, repo_type=REPO_TYPE)
        return True
    return False


def _open_pull_request(api: HfApi, repo_id: str, local: dict[str, _Local], managed_dirs: set[str]) -> str | None:
    """The URL of an open pull request whose files are this release, if there is one."""
    for discussion in api.get_repo_discussions(
        repo_id, discussion_type="pull_request", discussion_status="open", repo_type=REPO_TYPE
    ):
        if discussion.git_reference and _diff(local, _tree(api, repo_id, discussion.git_reference), managed_dirs) == (
            [],
            [],
        ):
            return discussion.url
    return None


def _card(folder: Path, manifest: Manifest, repo_id: str) -> bytes:
    """README.md as the folder holds it, with the repo id filled in, once its YAML header is checked."""
    path = folder / CARD
    if not path.is_file():
        raise PushError(f"{path}: not found. Rebuild the folder (`glan build`): it writes the card.")
    text = path.read_text(encoding="utf-8")
    try:
        header = DatasetCard(text).data.to_dict()
    except (ValueError, yaml.YAMLError) as error:
        raise PushError(
            f"{path}: its YAML header does not parse ({' '.join(str(error).split())}). Fix it, or "
            "rebuild the folder for a fresh card."
        ) from error
    try:
        expected = card_data(manifest, folder).to_dict()["configs"]
    except CardError as error:
        raise PushError(str(error)) from error
    if header.get("configs") != expected:
        raise PushError(
            f"{path}: configs: differs from the data files {MANIFEST} lists, so load_dataset would "
            "not read this release. Restore the `configs:` block the build wrote, or rebuild the folder."
        )
    return text.replace(REPO_ID, repo_id).encode()


def _check_unchanged(local: dict[str, _Local], additions: list[CommitOperationAdd]) -> None:
    """Every shard about to be committed still has the sha256 push read at its start (so the one its manifest lists),
    as uploaded and on disk: a folder that changed underneath fails here, before any commit or tag."""
    for addition in additions:
        item = local[addition.path_in_repo]
        if isinstance(item.source, Path) and (
            addition.upload_info.sha256.hex() != item.sha256 or _Local.of(item.source).sha256 != item.sha256
        ):
            raise PushError(
                f"{item.source}: changed while glan push was running, so it is no longer the file "
                f"{MANIFEST} lists. Nothing was committed: rebuild the folder, or stop what writes into "
                "it, then push again."
            )


def _read_manifest(folder: Path) -> tuple[Manifest, bytes]:
    """The manifest, and its bytes as read (what is uploaded)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise PushError(f"{path}: not found. Export the dataset first (`glan build`), or pass --from DIR.")
    data = path.read_bytes()
    manifest = parse_manifest(data, str(path))
    try:
        Version(manifest.taxonomy_version)
    except InvalidVersion as error:
        raise PushError(
            f"{path}: taxonomy_version: {manifest.taxonomy_version!r} is not a version like 1.0.0. "
            "Fix `version:` in taxonomy.yaml and rebuild."
        ) from error
    return manifest, data


def _release_files(folder: Path, manifest: Manifest) -> dict[str, Path | bytes]:
    """The manifest's parquet files (their paths), its glan/ inputs, its charts/ and the files beside it
    (glan_manifest.json, stats.json), these read now.

    A config folder must hold exactly the files the manifest lists, since load_dataset globs it, and
    glan/ and charts/ exactly the files it lists. README.md is taken apart (see _card), and no *.py or hidden file.
    """
    where = folder / MANIFEST
    files: dict[str, Path] = {}
    for config, spec in manifest.configs.items():
        for split, split_spec in spec.splits.items():
            for relative in split_spec.files:
                if relative.endswith(".py") or PurePosixPath(relative).parts[0] != config:
                    raise PushError(
                        f"{where}: configs.{config}.splits.{split}.files: {relative} is not a data file of folder "
                        f"{config}/. Re-export the folder."
                    )
                files[relative] = folder / relative
    inputs = {path: folder / path for path in manifest.checksums if path.startswith(f"{INPUTS_DIR}/")}
    inputs.update(
        {
            path: folder / path
            for path in manifest.checksums
            if PurePosixPath(path).parent.as_posix() == CHARTS_DIR and path.endswith(".png")
        }
    )
    files.update(inputs)
    for relative, path in files.items():
        if problem := relative_path_problem(relative):  # the manifest names what is read: nothing outside the folder
            raise PushError(f"{where}: {relative}: {problem}. Re-export the folder.")
        _refuse_links(folder, relative)
        if not path.is_file():
            raise PushError(f"{where}: lists {relative}, which does not exist in {folder}. Re-export the folder.")
    for directory in (*manifest.configs, INPUTS_DIR, CHARTS_DIR):
        on_disk = {
            path.relative_to(folder).as_posix()
            for path in (folder / directory).rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        }
        if extra := sorted(on_disk - set(files)):
            raise PushError(
                f"{folder / extra[0]}: not listed in {where}, so it is not part of this release. "
                "Delete it or re-export the folder."
            )
    for path in folder.iterdir():  # the card, the manifest and the files beside them
        if not path.name.startswith(".") and path.suffix != ".py":
            _refuse_links(folder, path.name)
    beside = {
        path.name: path
        for path in folder.iterdir()
        if path.is_file() and path.name != CARD and not path.name.startswith(".") and path.suffix != ".py"
    }
    read = {relative: path.read_bytes() for relative, path in {**inputs, **beside}.items()}
    for relative, data in read.items():
        if PurePosixPath(relative).parent.as_posix() == CHARTS_DIR and not data.startswith(PNG_SIGNATURE):
            raise PushError(
                f"{folder / relative}: not a PNG image (it does not start with the PNG signature), so it is not a "
                "chart glan drew. Rebuild the folder (`glan build`)."
            )
    return {**files, **read}


def _refuse_links(folder: Path, relative: str) -> None:
    """A file of the release, or a folder on its way, that is a symbolic link is refused: what is uploaded is the
    folder's own files, never what a link points to (charts/x.png -> ~/.ssh/id_rsa)."""
    path = folder
    for part in PurePosixPath(relative).parts:
        path = path / part
        if path.is_symlink():
            raise PushError(
                f"{path}: a symbolic link, and glan push uploads the folder's own files, never what a link points "
                "to. Replace it with the file itself, or rebuild the folder (`glan build`)."
            )


def _tree(api: HfApi, repo_id: str, commit: str) -> dict[str, RepoFile]:
    return {
        entry.path: entry
        for entry in api.list_repo_tree(repo_id, recursive=True, revision=commit, repo_type=REPO_TYPE)
        if isinstance(entry, RepoFile)
    }


def _manifest_at(api: HfApi, repo_id: str, commit: str) -> Manifest | None:
    try:
        path = api.hf_hub_download(repo_id, MANIFEST, repo_type=REPO_TYPE, revision=commit)
    except EntryNotFoundError:
        return None
    return parse_manifest(Path(path).read_bytes(), f"{repo_id}@{commit[:12]}:{MANIFEST}")


def _version(manifest: Manifest) -> Version:
    return Version(manifest.taxonomy_version)


def _previous_release(
    api: HfApi, repo_id: str, version: Version, tags: dict[str, str], head_manifest: Manifest | None
) -> Manifest | None:
    """The manifest of the newest tagged release older than `version` (else the branch's, if older).

    Anchoring the changelog on tags, not on the branch head, keeps it the same however often the
    release is pushed.
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
    """(paths to upload, paths to delete): stale files are those in a managed folder (a config's, glan/, charts/) or
    any *.py."""
    added = sorted(path for path, item in local.items() if not item.same_as(remote.get(path)))
    deleted = sorted(
        path
        for path in remote
        if path not in local and (PurePosixPath(path).parts[0] in managed_dirs or path.endswith(".py"))
    )
    return added, deleted


def _source(source: Path | bytes) -> str | bytes:
    return str(source) if isinstance(source, Path) else source


def changelog(manifest: Manifest, previous: Manifest | None) -> str:
    """The release commit's description: disciplines added and removed, and rows per config, since `previous`."""
    version = manifest.taxonomy_version
    if previous is None:
        rows = [[name, spec.rows] for name, spec in manifest.configs.items()]
        return f"GLAN taxonomy v{version}, the first release.\n\n" + markdown_table(["config", "rows"], rows)
    before = previous.taxonomy_version
    old = {d.discipline_id: d for d in previous.disciplines}
    new = {d.discipline_id: d for d in manifest.disciplines}

    def listing(ids: list[str], source: dict) -> str:
        if not ids:
            return " none"
        return "".join(f"\n  - {source[i].discipline} (`{i}`, {source[i].field} / {source[i].subfield})" for i in ids)

    added = [i for i in new if i not in old]
    removed = [i for i in old if i not in new]
    rows = []
    for name in dict.fromkeys([*manifest.configs, *previous.configs]):
        now = _rows(manifest.configs.get(name))
        then = _rows(previous.configs.get(name))
        rows.append([name, then, now, f"{now - then:+d}"])
    return (
        f"GLAN taxonomy v{version}, since v{before}:\n\n"
        f"- Disciplines added ({len(added)}):{listing(added, new)}\n"
        f"- Disciplines removed ({len(removed)}):{listing(removed, old)}\n\n"
        + markdown_table(["config", f"rows in v{before}", f"rows in v{version}", "change"], rows)
    )


def _rows(config: ConfigEntry | None) -> int:
    return config.rows if config is not None else 0
