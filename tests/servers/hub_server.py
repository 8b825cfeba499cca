"""A Hugging Face Hub stand-in over real HTTP on 127.0.0.1, for push and load tests.

It serves what huggingface_hub 2.x (HfApi, hf_hub_download, HfFileSystem) and datasets 5.x call when a
dataset is published with `create_commit` + `create_tag` and read back with `load_dataset`:

    POST /api/repos/create                               create_repo
    GET  /api/whoami-v2                                  whoami
    POST /api/validate-yaml                              create_commit, when README.md is in the commit (hub_metadata.py)
    GET  /api/{type}s/{repo}[/revision/{rev}]            repo_info / dataset_info (HfFileSystem checks revisions)
    GET  /api/{type}s/{repo}/refs                        list_repo_refs (?include_prs=1)
    GET  /api/{type}s/{repo}/commits/{rev}               list_repo_commits
    GET  /api/{type}s/{repo}/tree/{rev}[/{path}]         list_repo_tree (?recursive, ?expand), Link-paginated
    POST /api/{type}s/{repo}/paths-info/{rev}            get_paths_info (form or JSON body)
    POST /api/{type}s/{repo}/preupload/{rev}             upload mode (lfs/regular) and remote oid per file
    POST /{type}s/{repo}.git/info/lfs/objects/batch      LFS batch API, "basic" transfer
    PUT  /_lfs/{type}s/{repo}/{oid}                      the upload href the batch hands out
    POST /_lfs/{type}s/{repo}/{oid}/verify               the verify href
    POST /api/{type}s/{repo}/commit/{rev}                NDJSON commit (?create_pr=1), 412 on a stale parentCommit,
                                                         400 when README.md's metadata is invalid
    POST/DELETE /api/{type}s/{repo}/tag/{rev|tag}        create_tag / delete_tag
    POST /api/{type}s/{repo}/branch/{branch}             create_branch
    PUT  /api/{type}s/{repo}/settings                    update_repo_settings (visibility)
    GET  /api/{type}s/{repo}/discussions                 get_repo_discussions (pull requests; ?type, ?status)
    POST /api/{type}s/{repo}/discussions/{num}/merge     merge_pull_request
    GET/HEAD /{type}s/{repo}/resolve/{rev}/{path}        downloads, with Range, ETag, X-Repo-Commit, X-Linked-*
    POST /_test/configure                                the knobs below, for a server run as a subprocess

Model repos use the same paths without the `{type}s/` prefix. Path segments are split on the raw
(still quoted) path, because clients quote revisions like `refs/pr/1` into a single segment.

A commit is an immutable snapshot {path: Blob}; branches, tags and `refs/pr/N` point at commits, so a
failed push can be checked against the exact previous state. The JSON body of every API call is kept
(`state.payloads`), so a test can see what a client asked for, e.g. the visibility sent to create_repo.
Knobs (`configure`) make the server fail the Nth LFS upload or the commit endpoint, shrink tree pages to
exercise pagination, land someone else's commit on the branch during the next preupload (a
concurrent push), answer the next reads with a 503, and stall: hold every request unanswered, and never
handle it. An in-process test
may also set `state.on_request` to act while a client waits on a request.

    handle = start_hub_server()          # in-process, in a thread; handle.endpoint, .configure, .commits, .stop
    python -m tests.servers.hub_server --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import fnmatch
import hashlib
import json
import re
import threading
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import yaml
from aiohttp import web

from tests.servers import START_TIMEOUT_S
from tests.servers.hub_metadata import card_metadata_errors

FAKE_TOKEN = "hf_glan_test_token"
USER = "glan-tester"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# The Hub's default .gitattributes (abridged): these paths are stored as LFS objects.
GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in ("*.parquet", "*.arrow", "*.bin", "*.gz", "*.zip", "*.tar", "*.npy", "*.safetensors", "*.jsonl.gz")
)
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files above 10 MB in LFS whatever their name
CONCURRENT_FILE = "CONCURRENT.md"  # what knob commit_on_next_preupload commits


@dataclasses.dataclass(frozen=True)
class Blob:
    content: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @property
    def git_oid(self) -> str:
        """What git stores: the blob itself, or for LFS the pointer file."""
        data = self.pointer if self.lfs else self.content
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    @property
    def remote_oid(self) -> str:
        """The oid preupload reports, compared by huggingface_hub to CommitOperationAdd._local_oid."""
        return self.sha256 if self.lfs else self.git_oid


@dataclasses.dataclass(frozen=True)
class Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, Blob]  # never mutated after the commit is made


@dataclasses.dataclass
class PullRequest:
    sha: str  # the head of refs/pr/N
    base: str  # the branch it targets
    title: str
    created: str
    status: str = "open"  # open | merged | closed


@dataclasses.dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str
    commits: dict[str, Commit] = dataclasses.field(default_factory=dict)
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    pull_requests: list[PullRequest] = dataclasses.field(default_factory=list)  # refs/pr/N is pull_requests[N - 1]
    lfs: dict[str, bytes] = dataclasses.field(default_factory=dict)  # uploaded LFS objects, committed or not
    lfs_pending: dict[str, int] = dataclasses.field(default_factory=dict)  # oid -> size, announced by a batch call

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix):
                return refs.get(revision[len(prefix):])
        if match := re.fullmatch(r"refs/pr/(\d+)", revision):
            number = int(match.group(1))
            return self.pull_requests[number - 1].sha if 0 < number <= len(self.pull_requests) else None
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            found = [sha for sha in self.commits if sha.startswith(revision)]
            return found[0] if len(found) == 1 else None
        return None

    def history(self, sha: str) -> list[Commit]:
        """Commits reachable from `sha` by first parents, newest first."""
        out = []
        while sha is not None:
            commit = self.commits[sha]
            out.append(commit)
            sha = commit.parent
        return out


@dataclasses.dataclass
class Knobs:
    fail_lfs_upload: int | None = None  # fail the Nth LFS PUT counted from configure() (1 = the first)
    fail_commit: bool = False  # fail the commit endpoint
    fail_status: int = 500
    fail_times: int | None = None  # per kind, how many requests fail once triggered; None = until reconfigured
    tree_page_size: int = 1000  # the Hub's page size (50 when expand=True)
    commit_on_next_preupload: bool = False  # another client commits CONCURRENT_FILE to the branch first
    stall: bool = False  # every request (but /_test/configure) gets no answer while set, then a 503: never handled
    fail_reads: int = 0  # the next N GET and HEAD requests get a 503 (a Hub that is briefly overloaded)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def response(self) -> web.Response:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return web.json_response({"error": self.message}, status=self.status, headers=headers)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class HubState:
    """All repos and knobs; every public method takes the lock, so test threads may call them."""

    def __init__(self, tokens: set[str]):
        self.tokens = tokens
        self.repos: dict[tuple[str, str], Repo] = {}
        self.knobs = Knobs()
        self.lfs_puts = 0
        self.failures = {"lfs": 0, "commit": 0}
        self.requests: list[tuple[str, str]] = []  # (method, raw path with query) of every request
        self.stalled: list[tuple[str, str]] = []  # the requests the stall knob held, never handled
        # In-process tests only: called with (method, raw path) before each request is handled, in the server's thread
        # (e.g. to change a folder while a push is under way); the client waits meanwhile.
        self.on_request: Callable[[str, str], None] | None = None
        self.payloads: list[tuple[str, str, Any]] = []  # (method, raw path, JSON body) of every API call with one
        self.lock = threading.RLock()
        self._counter = 0

    # -- knobs and inspection (called from tests) ---------------------------------------------------

    def configure(self, **knobs: Any) -> None:
        with self.lock:
            self.reset(Knobs(**knobs))

    def reset(self, knobs: Knobs) -> None:
        self.knobs, self.lfs_puts, self.failures = knobs, 0, {"lfs": 0, "commit": 0}

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    # -- state changes ------------------------------------------------------------------------------

    def new_commit(self, repo: Repo, parent: str | None, title: str, message: str, files: dict[str, Blob]) -> Commit:
        self._counter += 1
        digest = hashlib.sha1(
            json.dumps([parent, title, self._counter, sorted((p, b.git_oid) for p, b in files.items())]).encode()
        ).hexdigest()
        commit = Commit(sha=digest, parent=parent, title=title, message=message, date=_now(), files=dict(files))
        repo.commits[digest] = commit
        return commit

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created=_now())
        attributes = Blob(GITATTRIBUTES.encode(), False)
        first = self.new_commit(repo, None, "initial commit", "", {".gitattributes": attributes})
        repo.branches["main"] = first.sha
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def should_fail(self, kind: str) -> bool:
        knobs = self.knobs
        if kind == "lfs":
            self.lfs_puts += 1
            triggered = knobs.fail_lfs_upload is not None and self.lfs_puts >= knobs.fail_lfs_upload
        else:
            triggered = knobs.fail_commit
        if not triggered or (knobs.fail_times is not None and self.failures[kind] >= knobs.fail_times):
            return False
        self.failures[kind] += 1
        return True


class HubApp:
    def __init__(self, state: HubState):
        self.state = state

    # -- plumbing -----------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        raw_path = request.raw_path.split("?", 1)[0]
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        if self.state.knobs.stall and segments != ["_test", "configure"]:
            with self.state.lock:
                self.state.stalled.append((request.method, request.raw_path))
            while self.state.knobs.stall:
                await asyncio.sleep(0.05)
            return HubError(503, "stalled (injected by the test); not handled").response()
        if request.method in ("GET", "HEAD") and self.state.knobs.fail_reads > 0:
            with self.state.lock:
                self.state.knobs.fail_reads -= 1
                self.state.failures["read"] = self.state.failures.get("read", 0) + 1
            return HubError(503, "Service Unavailable (injected by the test)").response()
        if self.state.on_request is not None:
            self.state.on_request(request.method, request.raw_path)
        with self.state.lock:
            self.state.requests.append((request.method, request.raw_path))
            if request.content_type == "application/json" and body and raw_path.startswith("/api/"):
                self.state.payloads.append((request.method, request.raw_path, json.loads(body)))
            try:
                return self.route(request, segments, body)
            except HubError as error:
                return error.response()

    def route(self, request: web.Request, seg: list[str], body: bytes) -> web.StreamResponse:
        method = request.method
        if seg[:1] == ["_test"] and seg[1:] == ["configure"] and method == "POST":
            failures = self.state.failures  # what the previous knobs did, for the test to check
            self.state.reset(Knobs(**json.loads(body or b"{}")))
            return web.json_response({"failures_before": failures})
        if seg[:1] == ["api"]:
            return self.route_api(request, seg[1:], body)
        if seg[:1] == ["_lfs"] and len(seg) >= 5:
            # like a presigned storage URL, the upload href carries no token: the batch call was authorized
            repo = self.state.repos.get((REPO_TYPES.get(seg[1], "model"), f"{seg[2]}/{seg[3]}"))
            if repo is None or seg[4] not in repo.lfs_pending:
                raise HubError(403, "Request has expired or was never signed")
            if method == "PUT" and len(seg) == 5:
                return self.lfs_put(repo, seg[4], body)
            if method == "POST" and seg[5:] == ["verify"]:
                return self.lfs_verify(repo, json.loads(body))
        repo_type = REPO_TYPES.get(seg[0]) if seg else None
        rest = seg[1:] if repo_type else seg
        repo_type = repo_type or "model"
        if len(rest) >= 2 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"]:
            repo = self.find_repo(repo_type, f"{rest[0]}/{rest[1][:-4]}", request, write=True)
            return self.lfs_batch(request, repo, json.loads(body))
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self.find_repo(repo_type, f"{rest[0]}/{rest[1]}", request)
            return self.resolve(request, repo, rest[3], "/".join(rest[4:]))
        raise HubError(404, f"no route for {method} {request.raw_path}")

    def route_api(self, request: web.Request, seg: list[str], body: bytes) -> web.StreamResponse:
        method = request.method
        if seg == ["agent-harnesses"]:  # huggingface_hub's best-effort user-agent registry
            return web.json_response({"standardEnvVars": [], "harnesses": {}})
        if seg == ["whoami-v2"]:
            self.authorize(request, required=True)
            return web.json_response({"type": "user", "name": USER, "orgs": [], "auth": {"type": "access_token"}})
        if seg == ["validate-yaml"] and method == "POST":
            return self.validate_yaml(json.loads(body))
        if seg == ["repos", "create"] and method == "POST":
            return self.create_repo(request, json.loads(body))
        if len(seg) < 3 or seg[0] not in REPO_TYPES:
            raise HubError(404, f"no route for {method} {request.raw_path}")
        repo_type, repo_id, action, args = REPO_TYPES[seg[0]], f"{seg[1]}/{seg[2]}", seg[3:4], seg[4:]
        write = method in ("POST", "PUT", "DELETE") and action[:1] not in (["paths-info"],)
        repo = self.find_repo(repo_type, repo_id, request, write=write)
        match action, method:
            case [], "GET":
                return self.info(request, repo, "main")
            case ["revision"], "GET":
                return self.info(request, repo, args[0])
            case ["refs"], "GET":
                return self.refs(repo, _flag(request.query.get("include_prs")))
            case ["commits"], "GET":
                return self.list_commits(request, repo, args[0] if args else "main")
            case ["tree"], "GET":
                return self.tree(request, repo, args[0] if args else "main", "/".join(args[1:]))
            case ["paths-info"], "POST":
                return self.paths_info(request, repo, args[0], body)
            case ["preupload"], "POST":
                return self.preupload(repo, args[0], json.loads(body))
            case ["commit"], "POST":
                return self.commit(request, repo, args[0], body)
            case ["tag"], "POST":
                return self.create_tag(repo, args[0], json.loads(body))
            case ["tag"], "DELETE":
                if repo.tags.pop(args[0], None) is None:
                    raise HubError(404, f"tag {args[0]} not found", "RevisionNotFound")
                return web.json_response({})
            case ["branch"], "POST":
                return self.create_branch(repo, args[0], json.loads(body or b"{}"))
            case ["settings"], "PUT":
                return self.update_settings(repo, json.loads(body))
            case ["discussions"], "GET" if not args:
                return self.discussions(request, repo)
            case ["discussions"], "POST" if args[1:] == ["merge"]:
                return self.merge(repo, int(args[0]))
        raise HubError(404, f"no route for {method} {request.raw_path}")

    def authorize(self, request: web.Request, required: bool) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header:
            if required:
                raise HubError(401, "You must be authenticated to do this. Set HF_TOKEN.")
            return None
        token = header.removeprefix("Bearer ").strip()
        if token not in self.state.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return USER

    def find_repo(self, repo_type: str, repo_id: str, request: web.Request, write: bool = False) -> Repo:
        user = self.authorize(request, required=write)
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user is None):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def commit_at(self, repo: Repo, revision: str) -> Commit:
        sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return repo.commits[sha]

    def base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def repo_url(self, request: web.Request, repo: Repo) -> str:
        return f"{self.base_url(request)}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    # -- repos --------------------------------------------------------------------------------------

    def create_repo(self, request: web.Request, payload: dict) -> web.Response:
        self.authorize(request, required=True)
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        if (repo_type, repo_id) in self.state.repos:  # create_repo(exist_ok=True) reads "url" from this 409
            repo = self.state.repos[(repo_type, repo_id)]
            return web.json_response({"error": "You already created this repo", "url": self.repo_url(request, repo)},
                                     status=409)
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        repo = self.state.create_repo(repo_type, repo_id, private)
        return web.json_response({"url": self.repo_url(request, repo), "name": repo_id, "id": repo_id})

    def validate_yaml(self, payload: dict) -> web.Response:
        errors = card_metadata_errors(payload.get("content", ""))
        return web.json_response({"errors": [{"message": error} for error in errors], "warnings": []},
                                 status=400 if errors else 200)

    def card_data(self, commit: Commit) -> dict | None:
        readme = commit.files.get("README.md")
        match = re.match(r"^---\n(.*?)\n---", readme.content.decode(errors="replace"), re.S) if readme else None
        try:
            return yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError:
            return None

    def info(self, request: web.Request, repo: Repo, revision: str) -> web.Response:
        commit = self.commit_at(repo, revision)
        blobs = _flag(request.query.get("blobs"))
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=blob.size, blobId=blob.git_oid)
                if blob.lfs:
                    sibling["lfs"] = {"size": blob.size, "sha256": blob.sha256, "pointerSize": len(blob.pointer)}
            siblings.append(sibling)
        return web.json_response({
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "createdAt": repo.created,
            "lastModified": commit.date,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "cardData": self.card_data(commit),
            "siblings": siblings,
        })

    def refs(self, repo: Repo, include_prs: bool) -> web.Response:
        def ref(name: str, full: str, sha: str) -> dict:
            return {"name": name, "ref": full, "targetCommit": sha}

        out = {
            "branches": [ref(name, f"refs/heads/{name}", sha) for name, sha in repo.branches.items()],
            "converts": [],
            "tags": [ref(name, f"refs/tags/{name}", sha) for name, sha in repo.tags.items()],
        }
        if include_prs:
            out["pullRequests"] = [
                ref(f"refs/pr/{n}", f"refs/pr/{n}", pr.sha) for n, pr in enumerate(repo.pull_requests, start=1)
            ]
        return web.json_response(out)

    def list_commits(self, request: web.Request, repo: Repo, revision: str) -> web.Response:
        commit = self.commit_at(repo, revision)
        return web.json_response([
            {"id": c.sha, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": USER}]}
            for c in repo.history(commit.sha)
        ])

    def create_tag(self, repo: Repo, revision: str, payload: dict) -> web.Response:
        commit = self.commit_at(repo, revision)
        tag = payload["tag"]
        if tag in repo.tags or tag in repo.branches:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.sha
        return web.json_response({})

    def update_settings(self, repo: Repo, payload: dict) -> web.Response:
        if "visibility" in payload:
            if payload["visibility"] not in ("public", "private"):
                raise HubError(400, f"invalid visibility {payload['visibility']!r}")
            repo.private = payload["visibility"] == "private"
        return web.json_response({})

    def discussions(self, request: web.Request, repo: Repo) -> web.Response:
        """Pull requests only (glan opens no plain discussions), newest first, in one page."""
        wanted_type, wanted_status = request.query.get("type", "all"), request.query.get("status", "all")
        out = [
            {"num": num, "title": pr.title, "status": pr.status, "createdAt": pr.created, "isPullRequest": True,
             "author": {"name": USER}, "repo": {"name": repo.repo_id, "type": repo.repo_type}}
            for num, pr in enumerate(repo.pull_requests, start=1)
            if wanted_type in ("all", "pull_request")
            and (wanted_status == "all" or (pr.status == "open") == (wanted_status == "open"))
        ][::-1]
        return web.json_response({"discussions": out, "count": len(out), "start": 0, "numClosedDiscussions": 0})

    def merge(self, repo: Repo, num: int) -> web.Response:
        if not 0 < num <= len(repo.pull_requests):
            raise HubError(404, f"pull request {num} not found")
        pr = repo.pull_requests[num - 1]
        if pr.status != "open":
            raise HubError(400, f"pull request {num} is {pr.status}")
        head = repo.branches[pr.base]
        if repo.commits[pr.sha].parent != head:  # a real merge would have to resolve conflicts
            raise HubError(409, f"{pr.base} moved since pull request {num} was opened; rebase it")
        merged = self.state.new_commit(repo, head, f"Merge pull request #{num}", pr.title, repo.commits[pr.sha].files)
        repo.branches[pr.base] = merged.sha
        pr.status = "merged"
        return web.json_response({})

    def create_branch(self, repo: Repo, branch: str, payload: dict) -> web.Response:
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        repo.branches[branch] = self.commit_at(repo, payload.get("startingPoint") or "main").sha
        return web.json_response({})

    # -- listing ------------------------------------------------------------------------------------

    def last_commit(self, repo: Repo, commit: Commit, path: str) -> dict:
        """The newest commit in `commit`'s history that changed `path` (a file or a folder)."""

        def under(files: dict[str, Blob]) -> dict[str, str]:
            return {p: b.git_oid for p, b in files.items() if p == path or p.startswith(path + "/")}

        history = repo.history(commit.sha)
        found = history[0]
        for newer, older in zip(history, history[1:]):
            if under(newer.files) != under(older.files):
                found = newer
                break
            found = older
        return {"id": found.sha, "title": found.title, "date": found.date}

    def entries(self, repo: Repo, commit: Commit, folder: str, recursive: bool, expand: bool) -> list[dict]:
        prefix = folder + "/" if folder else ""
        folders: dict[str, list[str]] = {}
        files = []
        for path, blob in commit.files.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                folders.setdefault(prefix + "/".join(parts[:depth]), []).append(blob.git_oid)
            if recursive or len(parts) == 1:
                files.append(path)
        if not recursive:
            folders = {f: oids for f, oids in folders.items() if "/" not in f[len(prefix):]}
        out = []
        for name, oids in folders.items():
            entry = {"type": "directory", "oid": hashlib.sha1("".join(sorted(oids)).encode()).hexdigest(),
                     "size": 0, "path": name}
            out.append(entry)
        for path in files:
            out.append(self.file_entry(path, commit.files[path]))
        out.sort(key=lambda e: e["path"])
        if expand:
            for entry in out:
                entry["lastCommit"] = self.last_commit(repo, commit, entry["path"])
        return out

    def file_entry(self, path: str, blob: Blob) -> dict:
        entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
        return entry

    def tree(self, request: web.Request, repo: Repo, revision: str, folder: str) -> web.Response:
        commit = self.commit_at(repo, revision)
        folder = folder.strip("/")
        if folder and not any(p.startswith(folder + "/") for p in commit.files):
            raise HubError(404, f"{folder} does not exist on {revision}", "EntryNotFound",
                           {"X-Repo-Commit": commit.sha})
        expand = _flag(request.query.get("expand"))
        entries = self.entries(repo, commit, folder, _flag(request.query.get("recursive")), expand)
        page_size = min(self.state.knobs.tree_page_size, 50) if expand else self.state.knobs.tree_page_size
        start = int(request.query.get("cursor") or 0)
        page = entries[start:start + page_size]
        headers = {}
        if start + page_size < len(entries):
            query = {k: v for k, v in request.query.items() if k != "cursor"}
            query["cursor"] = str(start + page_size)
            next_url = f"{self.base_url(request)}{request.path}?{urlencode(query)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.json_response(page, headers=headers)

    def paths_info(self, request: web.Request, repo: Repo, revision: str, body: bytes) -> web.Response:
        commit = self.commit_at(repo, revision)
        if request.content_type == "application/json":
            payload = json.loads(body)
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:  # huggingface_hub posts a form: paths=a&paths=b&expand=False
            form = parse_qs(body.decode())
            paths, expand = form.get("paths", []), _flag((form.get("expand") or [""])[0])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                entry = self.file_entry(path, commit.files[path])
            elif any(p.startswith(path + "/") for p in commit.files):
                oids = [b.git_oid for p, b in commit.files.items() if p.startswith(path + "/")]
                entry = {"type": "directory", "oid": hashlib.sha1("".join(sorted(oids)).encode()).hexdigest(),
                         "size": 0, "path": path}
            else:
                continue
            if expand:
                entry["lastCommit"] = self.last_commit(repo, commit, path)
            out.append(entry)
        return web.json_response(out)

    # -- upload -------------------------------------------------------------------------------------

    def is_lfs(self, commit: Commit, path: str, size: int, sample: bytes) -> bool:
        attributes = commit.files.get(".gitattributes")
        patterns = []
        if attributes is not None:
            for line in attributes.content.decode(errors="replace").splitlines():
                fields = line.split()
                if len(fields) > 1 and "filter=lfs" in fields[1:]:
                    patterns.append(fields[0])
        name = path.rsplit("/", 1)[-1]
        by_pattern = any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)
        return by_pattern or size >= LFS_THRESHOLD or b"\0" in sample

    def preupload(self, repo: Repo, revision: str, payload: dict) -> web.Response:
        knobs = self.state.knobs
        if knobs.commit_on_next_preupload and unquote(revision) in repo.branches:
            self.state.knobs = dataclasses.replace(knobs, commit_on_next_preupload=False)
            branch = unquote(revision)
            files = {**repo.commits[repo.branches[branch]].files, CONCURRENT_FILE: Blob(b"a concurrent edit\n", False)}
            repo.branches[branch] = self.state.new_commit(repo, repo.branches[branch], "Concurrent edit", "", files).sha
        commit = self.commit_at(repo, revision)
        files = []
        for item in payload["files"]:
            sample = base64.b64decode(item.get("sample", ""))
            lfs = item["size"] > 0 and self.is_lfs(commit, item["path"], item["size"], sample)
            existing = commit.files.get(item["path"])
            files.append({
                "path": item["path"],
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": False,
                "oid": existing.remote_oid if existing is not None else None,
            })
        return web.json_response({"files": files, "commitOid": commit.sha})

    def lfs_batch(self, request: web.Request, repo: Repo, payload: dict) -> web.Response:
        if payload.get("operation") != "upload":
            raise HubError(400, "only the upload operation is supported")
        base = f"{self.base_url(request)}/_lfs/{repo.repo_type}s/{repo.repo_id}"
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in repo.lfs:
                repo.lfs_pending[oid] = size
                entry["actions"] = {
                    "upload": {"href": f"{base}/{oid}", "header": {}},
                    "verify": {"href": f"{base}/{oid}/verify", "header": {}},
                }
            objects.append(entry)
        return web.json_response({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                                 content_type="application/vnd.git-lfs+json")

    def lfs_put(self, repo: Repo, oid: str, body: bytes) -> web.Response:
        if self.state.should_fail("lfs"):
            raise HubError(self.state.knobs.fail_status, "LFS storage failure (injected by the test)")
        if hashlib.sha256(body).hexdigest() != oid or len(body) != repo.lfs_pending[oid]:
            raise HubError(400, f"uploaded content does not match oid {oid} and its announced size")
        repo.lfs[oid] = body
        return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    def lfs_verify(self, repo: Repo, payload: dict) -> web.Response:
        content = repo.lfs.get(payload["oid"])
        if content is None or len(content) != payload["size"]:
            raise HubError(404, f"LFS object {payload['oid']} was not uploaded")
        return web.json_response({})

    def commit(self, request: web.Request, repo: Repo, revision: str, body: bytes) -> web.Response:
        if self.state.should_fail("commit"):
            raise HubError(self.state.knobs.fail_status, "Internal Error - We're working hard to fix this (injected)")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first line of a commit must be its header")
        header = lines[0]["value"]
        create_pr = _flag(request.query.get("create_pr"))
        revision = unquote(revision)
        if revision not in repo.branches:
            raise HubError(404 if repo.resolve(revision) is None else 400,
                           f"Invalid rev id: {revision} is not a branch", "RevisionNotFound")
        head = repo.branches[revision]
        parent = header.get("parentCommit")
        if parent is not None:
            resolved = repo.resolve(parent)
            if resolved is None:
                raise HubError(404, f"parent commit {parent} not found", "RevisionNotFound")
            if not create_pr and resolved != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            head = resolved
        files = dict(repo.commits[head].files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, f"invalid path {path!r}")
            if key == "file":
                content = value["content"]
                files[path] = Blob(base64.b64decode(content) if value.get("encoding") == "base64" else content.encode(), False)
            elif key == "lfsFile":
                content = repo.lfs.get(value["oid"])
                if content is None:
                    raise HubError(422, f"LFS object {value['oid']} for {path} was never uploaded")
                files[path] = Blob(content, True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                doomed = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                if not doomed:
                    raise HubError(404, "A folder with this name doesn't exist", "EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        readme = files.get("README.md")
        if readme is not None and readme is not repo.commits[head].files.get("README.md"):
            if errors := card_metadata_errors(readme.content.decode(errors="replace")):
                raise HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
        title, description = header.get("summary") or "update", header.get("description") or ""
        commit = self.state.new_commit(repo, head, title, description, files)
        url = self.repo_url(request, repo)
        pr_url = None
        if create_pr:
            repo.pull_requests.append(PullRequest(commit.sha, revision, title, commit.date))
            pr_url = f"{url}/discussions/{len(repo.pull_requests)}"
        else:
            repo.branches[revision] = commit.sha
        return web.json_response({"success": True, "commitOid": commit.sha, "commitUrl": f"{url}/commit/{commit.sha}",
                                  "pullRequestUrl": pr_url})

    # -- download -----------------------------------------------------------------------------------

    def resolve(self, request: web.Request, repo: Repo, revision: str, path: str) -> web.Response:
        commit = self.commit_at(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if blob.lfs:
            headers.update({"ETag": f'"{blob.sha256}"', "X-Linked-Etag": f'"{blob.sha256}"',
                            "X-Linked-Size": str(blob.size)})
        else:
            headers["ETag"] = f'"{blob.git_oid}"'
        content, status = blob.content, 200
        if match := re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("Range", "").strip()):
            start_text, end_text = match.groups()
            if start_text:
                start, end = int(start_text), int(end_text) if end_text else blob.size - 1
            else:
                start, end = max(blob.size - int(end_text or 0), 0), blob.size - 1
            end = min(end, blob.size - 1)
            if start >= blob.size or start > end:
                raise HubError(416, "Requested range not satisfiable",
                               headers={"Content-Range": f"bytes */{blob.size}"})
            content, status = blob.content[start:end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        return web.Response(body=content, status=status, headers=headers)


@dataclasses.dataclass
class HubServerHandle:
    endpoint: str
    state: HubState
    _loop: asyncio.AbstractEventLoop
    _runner: web.AppRunner
    _thread: threading.Thread

    def configure(self, **knobs: Any) -> dict[str, int]:
        """Replace the knobs (no argument resets them); returns the failures the previous knobs caused."""
        with self.state.lock:
            failures = self.state.failures
            self.state.configure(**knobs)
            return failures

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> list[Commit]:
        """The history of `revision`, oldest first."""
        with self.state.lock:
            repo = self.state.repo(repo_id, repo_type)
            return list(reversed(repo.history(repo.resolve(revision))))

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> str | None:
        with self.state.lock:
            return self.state.repo(repo_id, repo_type).resolve(revision)

    def tags(self, repo_id: str, repo_type: str = "dataset") -> dict[str, str]:
        with self.state.lock:
            return dict(self.state.repo(repo_id, repo_type).tags)

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        with self.state.lock:
            repo = self.state.repo(repo_id, repo_type)
            return {p: b.content for p, b in repo.commits[repo.resolve(revision)].files.items()}

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def make_app(state: HubState) -> web.Application:
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", HubApp(state).dispatch)
    return app


def start_hub_server(tokens: set[str] | None = None, port: int = 0) -> HubServerHandle:
    """Serve on 127.0.0.1 from a daemon thread; returns once the port is bound."""
    state = HubState(tokens or {FAKE_TOKEN})
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(state), access_log=None)
    started: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", port)
            loop.run_until_complete(site.start())
            started["port"] = site._server.sockets[0].getsockname()[1]
        except BaseException as error:  # surface bind errors to the caller instead of hanging it
            started["error"] = error
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="hub-server", daemon=True)
    thread.start()
    if not ready.wait(timeout=START_TIMEOUT_S):
        raise RuntimeError(f"hub test server did not start within {START_TIMEOUT_S} s")
    if "error" in started:
        raise started["error"]
    return HubServerHandle(f"http://127.0.0.1:{started['port']}", state, loop, runner, thread)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", action="append", help=f"accepted token (repeatable; default {FAKE_TOKEN})")
    args = parser.parse_args(argv)
    handle = start_hub_server(set(args.token or [FAKE_TOKEN]), args.port)
    print(handle.endpoint, flush=True)
    try:
        handle._thread.join()
    except KeyboardInterrupt:
        handle.stop()


if __name__ == "__main__":
    main()
