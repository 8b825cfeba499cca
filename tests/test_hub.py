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
    """client(*steps) runs the steps in one child interpreter and returns their results; with token=False,
    the child has no HF_TOKEN (and no stored login); keywords add to its environment (None: take the name out)."""
    from tests.helpers import PATIENCE_S
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

    def run(*steps: dict, token: bool = True, **more_env: str | None) -> list:
        child_env = {name: value for name, value in {**env, **more_env}.items() if value is not None}
        proc = subprocess.run(
            [sys.executable, __file__, json.dumps(steps)], cwd=ROOT,
            env=child_env if token else {k: v for k, v in child_env.items() if k != "HF_TOKEN"}, capture_output=True,
            text=True, timeout=PATIENCE_S,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout.split(RESULT_MARKER, 1)[1])

    return run


def _glan(*argv: str) -> dict:
    return {"op": "glan", "argv": [str(arg) for arg in argv]}


def _push(folder: Path, repo: str, *flags: str) -> dict:
    return _glan("push", repo, "--from", folder, *flags)


def _api(method: str, *args, **kwargs) -> dict:
    """An HfApi call, as any client would make it; returns nothing."""
    return {"op": "api", "method": method, "args": args, "kwargs": kwargs}


def _card(repo: str, revision: str = "main") -> dict:
    """The card at `revision`, read by huggingface_hub.DatasetCard."""
    return {"op": "card", "repo": repo, "revision": revision}


def _push_to_hub(folder: Path, repo: str, config: str) -> dict:
    return {"op": "push_to_hub", "folder": str(folder), "repo": repo, "config": config}


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
    assert second["out"] == (f"glan-tester/again: already published as v1.0.0 (commit {hub.tags(repo)['v1.0.0']}): "
                             "nothing to do.\n")


def test_an_older_release_pushed_again_is_already_published(hub, client, tmp_path):
    repo = "glan-tester/older"
    v1, v2 = _make(tmp_path / "v1"), _v2(tmp_path)
    changed = _make(tmp_path / "changed", answer_suffix=" (edited)")
    never = _make(tmp_path / "never", "1.0.5")
    first, second, again, refused, skipped = client(
        _push(v1, repo), _push(v2, repo), _push(v1, repo), _push(changed, repo), _push(never, repo))

    assert first["exit"] == second["exit"] == 0
    assert again["exit"] == 0, again["err"]
    tags = hub.tags(repo)
    assert again["out"] == f"glan-tester/older: already published as v1.0.0 (commit {tags['v1.0.0']}): nothing to do.\n"
    assert refused["exit"] == 2 and "v1.0.0 is already published on glan-tester/older with different content" in refused["err"]
    assert skipped["exit"] == 2 and skipped["err"] == (
        f"glan: glan-tester/older@main already holds taxonomy version 1.1.0, newer than 1.0.5 in "
        f"{never / 'glan_manifest.json'}, and v1.0.5 was never published. Bump `version:` in taxonomy.yaml above it "
        "and rebuild.\n")
    assert [c.title for c in hub.commits(repo)] == ["initial commit", "Release v1.0.0", "Release v1.1.0"]
    assert list(tags) == ["v1.0.0", "v1.1.0"]


def test_visibility_is_sent_only_when_asked_and_private_makes_a_public_repo_private(hub, client, tmp_path):
    v1 = _make(tmp_path / "v1")
    with hub.state.lock:
        hub.state.create_repo("dataset", "glan-tester/was-public", private=False)
        hub.state.create_repo("dataset", "glan-tester/was-private", private=True)
    start = len(hub.state.payloads)
    new, new_private, made_private, stays_private = client(
        _push(v1, "glan-tester/new"), _push(v1, "glan-tester/new-private", "--private"),
        _push(v1, "glan-tester/was-public", "--private"), _push(v1, "glan-tester/was-private"))

    for result in (new, new_private, made_private, stays_private):
        assert result["exit"] == 0, result["err"]
    creates = [body for method, path, body in hub.state.payloads[start:] if path == "/api/repos/create"]
    assert creates == [
        {"name": "new", "organization": "glan-tester", "type": "dataset"},
        {"name": "new-private", "organization": "glan-tester", "type": "dataset", "visibility": "private"},
        {"name": "was-public", "organization": "glan-tester", "type": "dataset", "visibility": "private"},
        {"name": "was-private", "organization": "glan-tester", "type": "dataset"},
    ]
    settings = [(path, body) for method, path, body in hub.state.payloads[start:] if path.endswith("/settings")]
    assert settings == [("/api/datasets/glan-tester/was-public/settings", {"visibility": "private"})]
    privacy = {name: hub.state.repo(f"glan-tester/{name}").private
               for name in ("new", "new-private", "was-public", "was-private")}
    assert privacy == {"new": False, "new-private": True, "was-public": True, "was-private": True}
    assert made_private["out"].startswith("made glan-tester/was-public private (it was public)\n")
    assert "made " not in new["out"] + new_private["out"] + stays_private["out"]


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
    assert card == (v2 / "README.md").read_text().replace("<repo_id>", "glan-tester/versions")
    assert 'load_dataset("glan-tester/versions", "instructions", revision="v1.1.0")' in card
    assert commits[1].message.startswith("GLAN taxonomy v1.0.0, the first release.")
    changelog = commits[2].message
    assert changelog.startswith("GLAN taxonomy v1.1.0, since v1.0.0:\n\n- Disciplines added (2):\n"
                                "  - Number Theory (`number-theory`")
    assert "  - Ancient History (`ancient-history`" in changelog
    assert "- Disciplines removed (0): none" in changelog
    assert "| instructions | 18 | 30 | +12 |" in changelog


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


def test_create_pr_leaves_main_alone_is_reused_and_tags_after_the_merge(hub, client, tmp_path):
    repo = "glan-tester/pr"
    v1 = _make(tmp_path / "v1")
    opened, from_pr, reopened = client(_push(v1, repo, "--create-pr"), *_loads(repo, "refs/pr/1", ["taxonomy"]),
                                       _push(v1, repo, "--create-pr"))

    assert opened["exit"] == 0, opened["err"]
    assert [c.title for c in hub.commits(repo)] == ["initial commit"]
    assert hub.tags(repo) == {}
    url = f"{hub.endpoint}/datasets/{repo}/discussions/1"
    assert f"pull request {url}\nnot tagged: merge the pull request, then run `glan push {repo}` without " \
           "--create-pr to tag v1.0.0\n" in opened["out"]
    assert len(from_pr["train"]) == 3
    assert [c.title for c in hub.commits(repo, "refs/pr/1")] == ["initial commit", "Release v1.0.0"]
    assert reopened["exit"] == 0, reopened["err"]
    assert reopened["out"] == (f"pull request {url} already holds this release: no new pull request.\n"
                               f"not tagged: merge the pull request, then run `glan push {repo}` without --create-pr "
                               "to tag v1.0.0\n")
    assert len(hub.state.repo(repo).pull_requests) == 1

    _, after_merge, tagged, again = client(
        _api("merge_pull_request", repo, 1, repo_type="dataset"), _push(v1, repo, "--create-pr"), _push(v1, repo),
        _push(v1, repo, "--create-pr"))
    merge_commit = hub.commits(repo)[-1]
    assert merge_commit.title == "Merge pull request #1" and hub.tags(repo) == {"v1.0.0": merge_commit.sha}
    assert after_merge["out"] == (f"{repo}@main already holds this release: no commit.\n"
                                  f"not tagged: run `glan push {repo}` without --create-pr to tag v1.0.0 (it needs "
                                  "write access to the repo)\n")
    assert tagged["out"] == f"{repo}@main already holds this release: no commit.\ntag v1.0.0 created\n"
    assert again["out"] == f"{repo}: already published as v1.0.0 (commit {merge_commit.sha}): nothing to do.\n"
    assert len(hub.state.repo(repo).pull_requests) == 1


def test_the_card_is_published_as_the_folder_holds_it(hub, client, tmp_path):
    repo = "glan-tester/edited-card"
    v1 = _make(tmp_path / "v1")
    readme = v1 / "README.md"
    edited = readme.read_text().replace("## Uses\n", "## Uses\n\nA note the maintainer added by hand.\n")
    readme.write_text(edited)
    broken = _make(tmp_path / "broken")
    (broken / "README.md").write_text("---\nlicense: [unclosed\n---\n\n# Card\n")
    reshaped = _make(tmp_path / "reshaped")
    card_text = (reshaped / "README.md").read_text()
    (reshaped / "README.md").write_text(card_text.replace("path: instructions/train-*", "path: instructions/*"))
    no_yaml, wrong_configs, published, card = client(
        _push(broken, repo), _push(reshaped, repo), _push(v1, repo), _card(repo, "v1.0.0"))

    assert no_yaml["exit"] == 2 and no_yaml["err"].startswith(
        f"glan: {broken / 'README.md'}: its YAML header does not parse (")
    assert no_yaml["err"].endswith("Fix it, or rebuild the folder for a fresh card.\n")
    assert wrong_configs["exit"] == 2 and wrong_configs["err"] == (
        f"glan: {reshaped / 'README.md'}: configs: differs from the data files glan_manifest.json lists, so "
        "load_dataset would not read this release. Restore the `configs:` block the build wrote, or rebuild the "
        "folder.\n")
    assert published["exit"] == 0, published["err"]
    assert hub.files(repo)["README.md"].decode() == edited.replace("<repo_id>", repo)
    assert "A note the maintainer added by hand." in card["text"]
    assert {config["config_name"] for config in card["data"]["configs"]} == set(CONFIGS)


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


def test_a_commit_landing_during_the_push_fails_it_cleanly_and_survives(hub, client, tmp_path):
    """Someone else commits to main after glan read the head and before its commit (the server lands that
    commit during glan's preupload): the release is refused (412), the other commit stays the head and no
    tag is made; pushing again releases on top of it."""
    from tests.servers.hub_server import CONCURRENT_FILE

    repo = "glan-tester/concurrent"
    v1, v2 = _make(tmp_path / "v1"), _v2(tmp_path)
    first, _, raced, after_race, retried = client(
        _push(v1, repo), _configure(commit_on_next_preupload=True), _push(v2, repo), _state(repo), _push(v2, repo))

    assert first["exit"] == 0
    assert raced["exit"] == 1
    assert "412" in raced["err"] and "A commit has happened since" in raced["err"]
    commits = hub.commits(repo)
    assert [c.title for c in commits] == ["initial commit", "Release v1.0.0", "Concurrent edit", "Release v1.1.0"]
    assert after_race["refs/heads/main"]["commit"] == commits[2].sha
    assert CONCURRENT_FILE in after_race["refs/heads/main"]["files"]
    assert sorted(after_race) == ["refs/heads/main", "refs/tags/v1.0.0"]
    assert retried["exit"] == 0, retried["err"]
    assert CONCURRENT_FILE in hub.files(repo) and hub.tags(repo)["v1.1.0"] == commits[3].sha


def test_private_message_and_revision_reach_the_hub(hub, client, tmp_path):
    repo, branched = "glan-tester/private", "glan-tester/branched"
    v1 = _make(tmp_path / "v1")
    with hub.state.lock:
        created = hub.state.create_repo("dataset", branched, private=False)
        created.branches["dev"] = created.branches["main"]
    private, on_dev, no_branch = client(
        _push(v1, repo, "--private", "--message", "Spring release"),
        _push(v1, branched, "--revision", "dev"),
        _push(v1, branched, "--revision", "nope"),
    )

    assert private["exit"] == 0, private["err"]
    assert hub.state.repo(repo).private is True
    assert [c.title for c in hub.commits(repo)] == ["initial commit", "Spring release"]
    assert on_dev["exit"] == 0, on_dev["err"]
    assert [c.title for c in hub.commits(branched, "dev")] == ["initial commit", "Release v1.0.0"]
    assert [c.title for c in hub.commits(branched, "main")] == ["initial commit"]
    assert hub.tags(branched) == {"v1.0.0": hub.head(branched, "dev")}
    assert no_branch["exit"] == 2
    assert "glan-tester/branched has no branch 'nope' (branches: dev, main)" in no_branch["err"]


def test_token_flag_pushes_and_pulls_a_private_repo_and_is_written_nowhere(hub, client, tmp_path):
    from tests.servers.hub_server import FAKE_TOKEN

    repo = "glan-tester/by-flag"
    push, pull, refused = client(
        _push(_make(tmp_path / "v1"), repo, "--private", "--token", FAKE_TOKEN, "-v"),
        _glan("pull", repo, tmp_path / "pulled", "--token", FAKE_TOKEN, "-v"),
        _glan("pull", repo, tmp_path / "refused", "--token", "hf_not_a_token_the_hub_knows"),
        token=False,
    )
    assert push["exit"] == 0, push["err"]
    assert hub.state.repo(repo).private and list(hub.tags(repo)) == ["v1.0.0"]
    assert pull["exit"] == 0, pull["err"]
    assert (tmp_path / "pulled" / "taxonomy.yaml").read_bytes() == (tmp_path / "v1" / "glan" / "taxonomy.yaml").read_bytes()
    assert refused["exit"] == 2 and not (tmp_path / "refused").exists(), refused["err"]
    for result in (push, pull, refused):
        assert FAKE_TOKEN not in result["out"] + result["err"]
    written = [path for path in tmp_path.rglob("*") if path.is_file()]  # the folder, the project, HF_HOME
    assert len(written) > 10
    assert [path for path in written if FAKE_TOKEN.encode() in path.read_bytes()] == []
    assert [path for path, data in hub.files(repo).items() if FAKE_TOKEN.encode() in data] == []


def test_off_a_terminal_push_and_pull_print_no_hub_progress_bars(hub, client, tmp_path):
    """huggingface_hub draws its bars on stderr whatever it is; glan turns them off when it is not a terminal (the
    test's environment, HF_HUB_DISABLE_PROGRESS_BARS, is left unset here: it would decide instead)."""
    repo = "glan-tester/no-bars"
    push, pull = client(_push(_make(tmp_path / "v1"), repo), _glan("pull", repo, tmp_path / "pulled"),
                        HF_HUB_DISABLE_PROGRESS_BARS=None)
    assert push["exit"] == 0 and pull["exit"] == 0
    assert push["err"] == pull["err"] == ""


def test_a_push_without_hf_token_says_how_to_log_in_and_sends_nothing(hub, client, tmp_path):
    repo = "glan-tester/anonymous"
    (push,) = client(_push(_make(tmp_path / "v1"), repo), token=False)
    assert push["exit"] == 2
    assert push["err"] == ("glan: no Hugging Face token: set HF_TOKEN to a token with write access, run `hf auth "
                           "login`, or pass --token.\n")
    assert ("dataset", repo) not in hub.state.repos
    assert not [path for _, path in hub.state.requests if "anonymous" in path]


def _post_json(url: str, payload) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


MALFORMED_CARDS = {
    "yaml": ("---\nconfigs: [unclosed\n---\n", "Invalid YAML in the metadata of README.md"),
    "not a mapping": ("---\n- a\n- b\n---\n", "must be a YAML mapping"),
    "config name": ("---\nconfigs:\n- data_files: a/*.parquet\n---\n", '"configs[0].config_name" is required'),
    "split": ("---\nconfigs:\n- config_name: a\n  data_files:\n  - path: a/*.parquet\n---\n",
              '"configs[0].data_files[0].split" is required'),
    "two defaults": ("---\nconfigs:\n- config_name: a\n  default: true\n- config_name: b\n  default: true\n---\n",
                     "at most one config may be the default"),
    "num_examples": ("---\ndataset_info:\n- config_name: a\n  splits:\n  - name: train\n    num_examples: -1\n"
                     "- config_name: b\n---\n", '"dataset_info[0].splits[0].num_examples" must be a non-negative'),
    "info name": ("---\ndataset_info:\n- splits: []\n- config_name: b\n---\n", '"dataset_info[0].config_name" is required'),
}


@pytest.mark.parametrize("card, expected", MALFORMED_CARDS.values(), ids=MALFORMED_CARDS.keys())
def test_server_refuses_malformed_card_metadata_and_takes_glans_card(hub, tmp_path, card, expected):
    status, body = _post_json(f"{hub.endpoint}/api/validate-yaml", {"content": card, "repoType": "dataset"})
    assert status == 400 and any(expected in error["message"] for error in body["errors"]), body
    glans_card = (_make(tmp_path / "v1") / "README.md").read_text()
    assert _post_json(f"{hub.endpoint}/api/validate-yaml", {"content": glans_card, "repoType": "dataset"}) == \
        (200, {"errors": [], "warnings": []})


def test_server_refuses_a_commit_whose_card_metadata_is_malformed(hub):
    import base64
    import urllib.error
    import urllib.request

    from tests.servers.hub_server import FAKE_TOKEN

    repo = "glan-tester/bad-card"
    with hub.state.lock:
        hub.state.create_repo("dataset", repo, private=False)
    head = hub.head(repo)
    card = MALFORMED_CARDS["split"][0].encode()
    lines = [{"key": "header", "value": {"summary": "bad card", "parentCommit": head}},
             {"key": "file", "value": {"path": "README.md", "content": base64.b64encode(card).decode(),
                                       "encoding": "base64"}}]
    request = urllib.request.Request(
        f"{hub.endpoint}/api/datasets/{repo}/commit/main", method="POST",
        data="".join(json.dumps(line) + "\n" for line in lines).encode(),
        headers={"Authorization": f"Bearer {FAKE_TOKEN}", "Content-Type": "application/x-ndjson"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    assert refused.value.headers["X-Error-Message"].startswith(
        'Invalid metadata in README.md: "configs[0].data_files[0].split" is required')
    assert hub.head(repo) == head


# -- child interpreter ------------------------------------------------------------------------------


def _child_glan(argv: list[str]) -> dict:
    from glan.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return {"exit": code, "out": out.getvalue(), "err": err.getvalue()}


def _child_api(method: str, args: list, kwargs: dict) -> None:
    from huggingface_hub import HfApi

    getattr(HfApi(), method)(*args, **kwargs)


def _child_card(repo: str, revision: str) -> dict:
    from huggingface_hub import DatasetCard, hf_hub_download

    card = DatasetCard.load(hf_hub_download(repo, "README.md", repo_type="dataset", revision=revision))
    return {"data": card.data.to_dict(), "text": card.text, "content": card.content}


def _child_push_to_hub(folder: str, repo: str, config: str) -> None:
    """What `datasets` itself publishes for a config of the folder, to compare dataset_info with glan's."""
    from datasets import load_dataset

    load_dataset(folder, config).push_to_hub(repo, config_name=config)


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
        if step["op"] == "glan":
            results.append(_child_glan(step["argv"]))
        elif step["op"] == "api":
            results.append(_child_api(step["method"], step["args"], step["kwargs"]))
        elif step["op"] == "card":
            results.append(_child_card(step["repo"], step["revision"]))
        elif step["op"] == "push_to_hub":
            results.append(_child_push_to_hub(step["folder"], step["repo"], step["config"]))
        elif step["op"] == "state":
            results.append(_child_state(step["repo"]))
        elif step["op"] == "configure":
            results.append(_child_configure(step["knobs"]))
        else:
            results.append(_child_load(step["path"], step["config"], step["revision"]))
    print(RESULT_MARKER + json.dumps(results))


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
