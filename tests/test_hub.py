"""`glan push` against a Hub-protocol server, read back with the unmodified `datasets` client.

huggingface_hub and datasets read HF_ENDPOINT and HF_HUB_DISABLE_XET when they are imported, so every
client step runs in a fresh interpreter (this file run as a script) with the environment pointing at the
test server; pytest's own process may already have imported both for other tests. The server runs in
this process, in a thread, so the tests can read its commits, refs and files directly and turn its
failure knobs between steps.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["taxonomy", "subjects", "syllabi", "questions", "instructions"]
RESULT_MARKER = "@@glan-test-result@@"


@pytest.fixture(scope="module")
def hub():
    from tests.servers.hub_server import start_hub_server

    handle = start_hub_server()
    yield handle
    handle.stop()


@pytest.fixture
def client(hub, tmp_path):
    """client(*steps) runs the steps in one child interpreter and returns their results."""
    from tests.servers.hub_server import FAKE_TOKEN

    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": FAKE_TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),  # hub cache and datasets cache, private to the test
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }

    def run(*steps: dict) -> list:
        proc = subprocess.run(
            [sys.executable, __file__, json.dumps(steps)], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout.split(RESULT_MARKER, 1)[1])

    return run


def _push(folder: Path, repo: str, *flags: str) -> dict:
    return {"op": "push", "argv": [repo, "--from", str(folder), *flags]}


def _state(repo: str) -> dict:
    return {"op": "state", "repo": repo}


def _configure(**knobs) -> dict:
    return {"op": "configure", "knobs": knobs}


def _loads(path: str | Path, revision: str | None = None, configs: list[str] = CONFIGS) -> list[dict]:
    return [{"op": "load", "path": str(path), "config": config, "revision": revision} for config in configs]


def _make(folder: Path, version: str = "1.0.0", **kwargs) -> Path:
    from tests.test_card import make_release

    make_release(folder, version, **kwargs)
    return folder


def _v2(tmp_path: Path) -> Path:
    """1.1.0: two disciplines added, instructions/train re-sharded (its old shards become stale)."""
    from tests.test_card import DISCIPLINES, EXTRA_DISCIPLINES

    return _make(tmp_path / "v2", "1.1.0", disciplines=DISCIPLINES + EXTRA_DISCIPLINES, train_shards=3)


def _release_paths(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_release_loads_like_the_local_folder(hub, client, tmp_path):
    repo = "glan-tester/release"
    v1 = _make(tmp_path / "v1")
    (v1 / "stats.json").write_text('{"configs": {}}\n')  # files beside the manifest are published too
    results = client(_push(v1, repo), *_loads(repo), *_loads(repo, "v1.0.0"), *_loads(v1))
    push, hub_main, hub_tag, local = results[0], results[1:6], results[6:11], results[11:16]

    assert push["exit"] == 0, push["err"]
    for config, main_rows, tag_rows, local_rows in zip(CONFIGS, hub_main, hub_tag, local):
        assert main_rows == local_rows, config
        assert tag_rows == local_rows, config
    assert set(local[4]) == {"train", "test"} and len(local[4]["train"]) == 15 and len(local[4]["test"]) == 3

    commits = hub.commits(repo)
    assert [c.title for c in commits] == ["initial commit", "Release v1.0.0"]
    assert hub.tags(repo) == {"v1.0.0": commits[-1].sha}
    assert set(hub.files(repo)) == _release_paths(v1) | {".gitattributes"}
    assert f"commit {commits[-1].sha}" in push["out"] and "tag v1.0.0 created" in push["out"]


def test_same_release_again_makes_no_commit(hub, client, tmp_path):
    repo = "glan-tester/again"
    v1 = _make(tmp_path / "v1")
    first, second = client(_push(v1, repo), _push(v1, repo))

    assert first["exit"] == 0 and second["exit"] == 0, second["err"]
    assert len(hub.commits(repo)) == 2
    assert list(hub.tags(repo)) == ["v1.0.0"]
    assert "already holds this release: no commit" in second["out"]
    assert "tag v1.0.0 already points at this release" in second["out"]


def test_new_version_is_one_commit_and_one_tag(hub, client, tmp_path):
    repo = "glan-tester/versions"
    v1, v2 = _make(tmp_path / "v1"), _v2(tmp_path)
    results = client(
        _push(v1, repo), _push(v2, repo),
        *_loads(repo, "v1.0.0", ["taxonomy", "instructions"]), *_loads(v1, None, ["taxonomy", "instructions"]),
        *_loads(repo, None, ["instructions"]), *_loads(v2, None, ["instructions"]),
    )
    first, second, old_taxonomy, old_instructions, local_taxonomy, local_instructions, new_hub, new_local = results

    assert first["exit"] == 0 and second["exit"] == 0, second["err"]
    commits = hub.commits(repo)
    assert [c.title for c in commits] == ["initial commit", "Release v1.0.0", "Release v1.1.0"]
    assert hub.tags(repo) == {"v1.0.0": commits[1].sha, "v1.1.0": commits[2].sha}
    assert old_taxonomy == local_taxonomy and old_instructions == local_instructions
    assert len(old_taxonomy["train"]) == 3
    assert new_hub == new_local and len(new_hub["train"]) + len(new_hub["test"]) == 30

    files = hub.files(repo)
    assert set(files) == _release_paths(v2) | {".gitattributes"}  # the 2-shard instructions/train is gone
    assert "  - instructions/train-00000-of-00002.parquet" in second["out"]
    card = files["README.md"].decode()
    changelog = card.split("## Changelog", 1)[1]
    assert "### v1.1.0 (since v1.0.0)" in changelog
    assert "- Disciplines added (2):\n  - Number Theory (`number-theory`" in changelog
    assert "  - Ancient History (`ancient-history`" in changelog
    assert "- Disciplines removed (0): none" in changelog
    assert "| instructions | 18 | 30 | +12 |" in changelog
    assert 'load_dataset("glan-tester/versions", "instructions", revision="v1.1.0")' in card


def test_refused_releases_leave_the_repo_unchanged(hub, client, tmp_path):
    repo = "glan-tester/immutable"
    v1 = _make(tmp_path / "v1")
    changed = _make(tmp_path / "changed", answer_suffix=" (edited)")
    stray = _make(tmp_path / "stray", "1.1.0")
    (stray / "instructions" / "train-00009-of-00009.parquet").write_bytes(b"left over from an older export")
    tampered = _make(tmp_path / "tampered", "1.1.0")
    shard = "instructions/test-00000-of-00001.parquet"
    (tampered / shard).write_bytes((changed / shard).read_bytes())
    first, before, refused, stale, corrupt, after = client(
        _push(v1, repo), _state(repo), _push(changed, repo), _push(stray, repo), _push(tampered, repo), _state(repo)
    )

    assert first["exit"] == 0
    assert refused["exit"] == 2
    assert "v1.0.0 is already published on glan-tester/immutable with different content" in refused["err"]
    assert "bump `version:` in taxonomy.yaml" in refused["err"]
    assert stale["exit"] == 2
    assert "train-00009-of-00009.parquet: not listed in" in stale["err"]
    assert corrupt["exit"] == 2 and f"{shard}: its sha256 differs from checksums" in corrupt["err"]
    assert after == before
    assert len(hub.commits(repo)) == 2 and list(hub.tags(repo)) == ["v1.0.0"]


def test_failure_mid_push_leaves_the_repo_unchanged_and_a_retry_succeeds(hub, client, tmp_path):
    repo = "glan-tester/failures"
    v1, v2 = _make(tmp_path / "v1"), _v2(tmp_path)
    try:
        results = client(
            _push(v1, repo), _state(repo),
            # the storage refuses the 2nd LFS upload (a 403 is not retried by huggingface_hub)
            _configure(fail_lfs_upload=2, fail_status=403), _push(v2, repo), _state(repo),
            # one transient 500 on an upload is retried by the client; then the commit endpoint fails
            _configure(fail_lfs_upload=1, fail_commit=True, fail_status=500, fail_times=1), _push(v2, repo), _state(repo),
            _configure(), _push(v2, repo),
        )
    finally:
        hub.configure()
    first, before, _, lfs_failure, after_lfs, lfs_failures, commit_failure, after_commit, commit_failures, retry = results

    assert first["exit"] == 0
    assert lfs_failure["exit"] == 1 and "Error while uploading" in lfs_failure["err"]
    assert after_lfs == before
    assert lfs_failures["failures_before"]["lfs"] >= 1
    assert commit_failure["exit"] == 1 and "500" in commit_failure["err"]
    assert commit_failures["failures_before"] == {"lfs": 1, "commit": 1}
    assert after_commit == before
    assert retry["exit"] == 0, retry["err"]
    commits = hub.commits(repo)
    assert [c.title for c in commits] == ["initial commit", "Release v1.0.0", "Release v1.1.0"]
    assert hub.tags(repo)["v1.1.0"] == commits[-1].sha
    assert set(hub.files(repo)) == _release_paths(v2) | {".gitattributes"}


def test_published_card_matches_the_repo_and_no_script_is_uploaded(hub, client, tmp_path):
    from tests.servers.hub_server import Blob

    repo = "glan-tester/card"
    v1 = _make(tmp_path / "v1")
    (v1 / "glan_dataset.py").write_text("raise SystemExit('a loading script must never be published')\n")
    # an old script-based repo: its script would make load_dataset refuse the repo, so the release deletes it
    with hub.state.lock:
        state = hub.state
        old = state.create_repo("dataset", repo, private=False)
        files = {**old.commits[old.branches["main"]].files, "card.py": Blob(b"print('old loading script')\n", False)}
        old.branches["main"] = state.new_commit(old, old.branches["main"], "old script", "", files).sha
        state.configure(tree_page_size=4)  # the client must follow the Link header of paginated trees
    try:
        push, instructions = client(_push(v1, repo), *_loads(repo, "v1.0.0", ["instructions"]))
    finally:
        hub.configure()

    assert push["exit"] == 0, push["err"]
    assert len(instructions["train"]) == 15
    assert any(f"/api/datasets/{repo}/tree/" in path and "cursor=" in path for _, path in hub.state.requests)
    files = hub.files(repo)
    assert not [path for path in files if path.endswith(".py")]
    assert "  - card.py" in push["out"]
    card = files["README.md"].decode()
    meta = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", card, re.S).group(1))
    manifest = json.loads(files["glan_manifest.json"])
    for config in meta["configs"]:
        for entry in config["data_files"]:
            matched = sorted(p for p in files if fnmatch.fnmatch(p, entry["path"]))
            assert matched == sorted(manifest["configs"][config["config_name"]]["splits"][entry["split"]]["files"])
    rows = {i["config_name"]: {s["name"]: s["num_examples"] for s in i["splits"]} for i in meta["dataset_info"]}
    assert rows == {
        name: {split: spec["num_rows"] for split, spec in config["splits"].items()}
        for name, config in manifest["configs"].items()
    }
    assert rows["instructions"] == {"train": 15, "test": 3}


def test_create_pr_leaves_main_alone_and_tags_nothing(hub, client, tmp_path):
    repo = "glan-tester/pr"
    v1 = _make(tmp_path / "v1")
    push, from_pr = client(_push(v1, repo, "--create-pr"), *_loads(repo, "refs/pr/1", ["taxonomy"]))

    assert push["exit"] == 0, push["err"]
    assert [c.title for c in hub.commits(repo)] == ["initial commit"]
    assert hub.tags(repo) == {}
    assert "pull request" in push["out"] and "/discussions/1" in push["out"]
    assert len(from_pr["train"]) == 3
    assert [c.title for c in hub.commits(repo, "refs/pr/1")] == ["initial commit", "Release v1.0.0"]


def test_server_resolve_serves_ranges_and_the_headers_hf_hub_download_needs(hub):
    import urllib.error
    import urllib.request

    from tests.servers.hub_server import Blob

    repo = "glan-tester/ranges"
    with hub.state.lock:
        state = hub.state
        created = state.create_repo("dataset", repo, private=False)
        blob = Blob(bytes(range(256)) * 4, True)
        files = {**created.commits[created.branches["main"]].files, "data/blob.parquet": blob}
        head = state.new_commit(created, created.branches["main"], "data", "", files).sha
        created.branches["main"] = head
    url = f"{hub.endpoint}/datasets/{repo}/resolve/main/data/blob.parquet"

    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
        assert response.headers["X-Repo-Commit"] == head
        assert response.headers["X-Linked-Etag"] == f'"{blob.sha256}"'
        assert response.headers["X-Linked-Size"] == response.headers["Content-Length"] == "1024"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=10-19"})) as response:
        assert response.status == 206 and response.read() == blob.content[10:20]
        assert response.headers["Content-Range"] == "bytes 10-19/1024"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{hub.endpoint}/datasets/{repo}/resolve/{head[:7]}/nope.txt")
    assert missing.value.code == 404 and missing.value.headers["X-Error-Code"] == "EntryNotFound"


# -- child interpreter ------------------------------------------------------------------------------


def _child_push(argv: list[str]) -> dict:
    from builder.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["push", *argv])
    return {"exit": code, "out": out.getvalue(), "err": err.getvalue()}


def _child_load(path: str, config: str, revision: str | None) -> dict:
    from datasets import load_dataset

    dataset = load_dataset(path, config, revision=revision)
    return {split: dataset[split].to_list() for split in dataset}


def _child_state(repo: str) -> dict:
    """What a client sees of a repo: its refs and the files (git oids) at each."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi()
    refs = api.list_repo_refs(repo, repo_type="dataset")
    return {
        ref.ref: {
            "commit": ref.target_commit,
            "files": {
                entry.path: entry.blob_id
                for entry in api.list_repo_tree(repo, recursive=True, revision=ref.target_commit, repo_type="dataset")
                if isinstance(entry, RepoFile)
            },
        }
        for ref in refs.branches + refs.tags
    }


def _child_configure(knobs: dict) -> dict:
    import httpx2

    response = httpx2.post(os.environ["HF_ENDPOINT"] + "/_test/configure", json=knobs)
    response.raise_for_status()
    return response.json()


def _child(steps: list[dict]) -> None:
    assert os.environ.get("HF_ENDPOINT", "").startswith("http://127.0.0.1:"), "run through the `client` fixture"
    results = []
    for step in steps:
        if step["op"] == "push":
            results.append(_child_push(step["argv"]))
        elif step["op"] == "state":
            results.append(_child_state(step["repo"]))
        elif step["op"] == "configure":
            results.append(_child_configure(step["knobs"]))
        else:
            results.append(_child_load(step["path"], step["config"], step["revision"]))
    print(RESULT_MARKER + json.dumps(results))


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
