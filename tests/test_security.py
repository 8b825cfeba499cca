"""Untrusted input on one machine (docs/security.md): hostile prompt and card templates, an --out that names what
glan did not write, names too long to make files of. Each case runs the CLI against the OpenAI-protocol test
server and checks the exit code, the one line, the files left behind, and a sentinel folder outside the test's
own that a hostile input aims at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, glan
from tests.servers import start_openai_server

SECRET_KEY = "sk-glan-secret-do-not-leak-1234567890"
DISCIPLINES = "Organic Chemistry,Linear Algebra"


@pytest.fixture(scope="module")
def server():
    with start_openai_server(log_bodies=True) as started:
        yield started


@pytest.fixture
def outside(tmp_path_factory, monkeypatch):
    """A folder outside the test's own holding a sentinel file, what hostile inputs aim at; and a secret key in
    the environment that nothing may print, send in a request body, or write."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "sentinel.txt").write_text("untouched\n")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    return folder


def assert_untouched(outside: Path) -> None:
    assert sorted(path.name for path in outside.iterdir()) == ["sentinel.txt"]
    assert (outside / "sentinel.txt").read_text() == "untouched\n"


def project(root: Path) -> Path:
    """A copy of the shipped taxonomy and prompts (prompts a test may edit)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "prompts", root / "prompts")
    shutil.copy(REPO / "taxonomy.yaml", root / "taxonomy.yaml")
    return root / "taxonomy.yaml"


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder`, with the bytes of each file: what a refused command must leave as it was."""
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


def run_flags(taxonomy: Path, server, work: Path) -> list:
    return ["--taxonomy", taxonomy, "--preset", "smoke", "--disciplines", DISCIPLINES, "--model", "test-model",
            "--base-url", server.base_url, "--work-dir", work]


def validate_estimate_build(taxonomy: Path, server, tmp_path: Path) -> list[tuple[int, str, str]]:
    """validate, estimate and build of `taxonomy`, each refused before anything is sent or written."""
    server.reset()
    before = tree(tmp_path)
    results = [glan("taxonomy", "validate", taxonomy),
               glan("estimate", *run_flags(taxonomy, server, tmp_path / ".glan")),
               glan("build", *run_flags(taxonomy, server, tmp_path / ".glan"), "--out", tmp_path / "dist")]
    assert server.stats()["requests"] == 0
    assert tree(tmp_path) == before  # no work dir, no folder, no file changed
    return results


def hostile_prompt(taxonomy: Path, line: str) -> tuple[Path, int]:
    """`line` as the first line of the questions prompt's user template; returns the file and that line's number."""
    path = taxonomy.parent / "prompts" / "questions.yaml"
    text = path.read_text()
    assert "\nuser: |\n" in text
    path.write_text(text.replace("\nuser: |\n", f"\nuser: |\n  {line}\n", 1))
    return path, text.splitlines().index("user: |") + 2


QUESTIONS_VARIABLES = ("chosen_sessions, discipline, discipline_id, field, key_concepts, learned_up_to, level, model, "
                       "prompt_fingerprint, sessions, strategy, subfield, subject, subject_id, syllabus")


@pytest.mark.parametrize("template, name", [
    ("{{ cycler.__init__.__globals__.os.popen('touch OUTSIDE/pwned').read() }}", "__init__"),
    ("{{ cycler.__init__.__globals__.os.environ.get('OPENAI_API_KEY') }}", "__init__"),
    ("{{ ''.__class__.__mro__ }}", "__class__"),
    ("{{ syllabus['__class__'] }}", "__class__"),
    ("{% if discipline == 'never' %}{{ key_concepts|attr('__class__') }}{% endif %}", "__class__"),
], ids=["popen", "environ", "mro", "item", "hidden-branch"])
def test_a_prompt_naming_what_the_sandbox_refuses_is_one_line_with_its_file_line(server, outside, tmp_path, template,
                                                                                  name):
    taxonomy = project(tmp_path / "project")
    path, line = hostile_prompt(taxonomy, template.replace("OUTSIDE", str(outside)))
    expected = (f"glan: {path}:{line}: user: the template reaches for {name!r}, which the template sandbox refuses "
                "(names starting with _). Use only the prompt's variables and their fields (docs/security.md).\n")
    for code, out, err in validate_estimate_build(taxonomy, server, tmp_path):
        assert (code, out, err) == (2, "", expected)
    assert_untouched(outside)


@pytest.mark.parametrize("template, problem", [
    ("{{ syllabus|attr('_' ~ '_class__') }}", "access to attribute '__class__' of 'list' object is unsafe"),
    ("{{ key_concepts.append('x') }}", "access to attribute 'append' of 'list' object is unsafe"),
    ("{{ '{0.__class__}'.format(syllabus) }}", "access to attribute '__class__' of 'list' object is unsafe"),
    ("{{ lipsum() }}", "'lipsum' is undefined"),
    ("{{ cycler }}", "'cycler' is undefined"),
], ids=["built-name", "mutation", "format", "lipsum", "cycler"])
def test_a_prompt_the_sandbox_refuses_when_rendered_is_one_line_before_any_request(server, outside, tmp_path, template,
                                                                                    problem):
    """What only rendering finds (a name built at render time, a method that would change a value, jinja's globals,
    which prompts do not get) fails the render with the stage's real variables, in validate, estimate and build."""
    taxonomy = project(tmp_path / "project")
    path, _ = hostile_prompt(taxonomy, template)
    expected = f"glan: {path}: template line 1: {problem}. The questions prompt can use: {QUESTIONS_VARIABLES}.\n"
    for code, out, err in validate_estimate_build(taxonomy, server, tmp_path):
        assert (code, out, err) == (2, "", expected)
    assert_untouched(outside)


def test_a_refusal_hidden_from_the_checks_stops_the_build_with_one_line_and_sends_no_secret(server, outside, tmp_path):
    """A refused access only the second discipline reaches passes validate (its render takes the first discipline),
    and stops the build when that discipline's questions are rendered: one line, exit 2, no traceback, no folder,
    and nothing of the environment in any request."""
    taxonomy = project(tmp_path / "project")
    path, _ = hostile_prompt(taxonomy, "{% if discipline_id == 'linear-algebra' %}{{ key_concepts.append(1) }}"
                                       "{% endif %}")
    assert glan("taxonomy", "validate", taxonomy)[0] == 0
    server.reset()
    code, out, err = glan("build", *run_flags(taxonomy, server, tmp_path / ".glan"), "--out", tmp_path / "dist")

    assert code == 2
    assert err.splitlines()[-1] == (f"glan: {path}: template line 1: access to attribute 'append' of 'list' object is "
                                    f"unsafe. The questions prompt can use: {QUESTIONS_VARIABLES}.")
    assert "Traceback" not in err and SECRET_KEY not in out + err
    assert not (tmp_path / "dist").exists() and not (tmp_path / "dist.incomplete").exists()
    log = server.log()
    assert log and all(SECRET_KEY not in record["body"] for record in log)
    assert_untouched(outside)


def card_template(taxonomy: Path, body: str) -> Path:
    """A card template beside the taxonomy (named by its card block), glan's own header and then `body`."""
    data = yaml.safe_load(taxonomy.read_text())
    data["card"] = {"template": "card.md"}
    taxonomy.write_text(yaml.safe_dump(data, sort_keys=False))
    path = taxonomy.parent / "card.md"
    path.write_text("---\n{{ card_data }}\n---\n\n# {{ title }}\n\n" + body + "\n")
    return path


def test_a_card_template_naming_what_the_sandbox_refuses_is_one_line(server, outside, tmp_path):
    taxonomy = project(tmp_path / "project")
    path = card_template(taxonomy, "<!-- {{ cycler.__init__.__globals__.os.environ }} -->")
    line = next(number for number, text in enumerate(taxonomy.read_text().splitlines(), 1) if "template:" in text)
    expected = (f"glan: {taxonomy}:{line}: card.template: {path}: line 7: reaches for '__init__', which the template "
                "sandbox refuses (names starting with _). Use only the card's variables and their fields (docs/card.md, "
                "docs/security.md).\n")
    for code, out, err in validate_estimate_build(taxonomy, server, tmp_path):
        assert (code, out, err) == (2, "", expected)
    assert_untouched(outside)


def test_a_card_template_the_sandbox_refuses_when_rendered_is_one_line(server, outside, tmp_path):
    taxonomy = project(tmp_path / "project")
    path = card_template(taxonomy, "Made by\n{{ manifest.update({'license': 'mit'}) }}")
    expected = (f"glan: {path}:8: access to attribute 'update' of 'dict' object is unsafe. A card template renders in "
                "a sandbox with only the variables docs/card.md lists (docs/security.md).\n")
    for code, out, err in validate_estimate_build(taxonomy, server, tmp_path):
        assert (code, out, err) == (2, "", expected)
    assert_untouched(outside)


# -- --out replaces only what glan wrote ---------------------------------------------------------------------------


def out_project(tmp_path: Path) -> Path:
    """tmp/project: taxonomy, prompts, a folder of the user's files; tmp/important: more of them."""
    taxonomy = project(tmp_path / "project")
    for folder in (tmp_path / "project" / "important", tmp_path / "important"):
        folder.mkdir()
        (folder / "notes.txt").write_text("the user's own\n")
    return taxonomy


THE_WHOLE_FOLDER = "and a build replaces the whole folder at --out. Pass a folder of its own, e.g. dist beside the taxonomy."
NOT_OURS = ("a build would replace this folder, but it holds files and no glan_manifest.json, so it is not a dataset "
            "glan wrote. Pass another --out (a new or empty folder), or move these files away.")


@pytest.mark.parametrize("flags, expected", [
    (["--out", "."], f".: --out is the current directory, {THE_WHOLE_FOLDER}"),
    (["--out", "/"], f"/: --out is a folder that holds the current directory ({{project}}), {THE_WHOLE_FOLDER}"),
    (["--out", ".."], f"..: --out is a folder that holds the current directory ({{project}}), {THE_WHOLE_FOLDER}"),
    (["--out", "../project"], f"../project: --out is the current directory, {THE_WHOLE_FOLDER}"),
    (["--out", "important"], f"important: {NOT_OURS}"),
    (["--out", "../important"], f"../important: {NOT_OURS}"),
    (["--out", ".glan", "--work-dir", ".glan"], f".glan: --out is the work dir, {THE_WHOLE_FOLDER}"),
    (["--out", "dist", "--work-dir", "dist/.glan"],
     f"dist: --out is a folder that holds the work dir ({{project}}/dist/.glan), {THE_WHOLE_FOLDER}"),
    (["--out", ".glan/dist", "--work-dir", ".glan"],
     "{glan_dist}: --out is inside the work dir ({project}/.glan), which glan manages. Pass a folder outside it, e.g. "
     "dist beside the taxonomy."),
    (["--out", "important/../important"], f"important/../important: {NOT_OURS}"),
], ids=["dot", "root", "parent", "cwd-by-another-name", "users-folder", "users-folder-beside", "work-dir",
        "holds-work-dir", "inside-work-dir", "dotted"])
def test_out_refuses_any_folder_glan_did_not_write_before_anything_runs(server, outside, tmp_path, monkeypatch, flags,
                                                                       expected):
    taxonomy = out_project(tmp_path)
    monkeypatch.chdir(tmp_path / "project")
    server.reset()
    before = tree(tmp_path)
    code, out, err = glan("build", "--taxonomy", "taxonomy.yaml", "--preset", "smoke", "--disciplines", DISCIPLINES,
                          "--model", "test-model", "--base-url", server.base_url, *flags)

    project_dir = taxonomy.parent
    assert (code, out) == (2, "")
    assert err == "glan: " + expected.format(project=project_dir, glan_dist=Path(".glan/dist")) + "\n"
    assert server.stats()["requests"] == 0
    assert tree(tmp_path) == before
    assert_untouched(outside)


def test_out_refuses_the_taxonomys_folder_from_elsewhere_and_an_incomplete_folder_of_the_users(server, outside,
                                                                                              tmp_path, monkeypatch):
    taxonomy = out_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    server.reset()
    (tmp_path / "dist.incomplete").mkdir()
    (tmp_path / "dist.incomplete" / "draft.txt").write_text("not glan's\n")
    before = tree(tmp_path)
    flags = ["--taxonomy", taxonomy, "--preset", "smoke", "--model", "test-model", "--base-url", server.base_url]
    project_folder = glan("build", *flags, "--out", "project")
    incomplete = glan("build", *flags, "--out", "dist")

    assert project_folder == (2, "", f"glan: project: --out is the taxonomy's folder, {THE_WHOLE_FOLDER}\n")
    assert incomplete == (2, "", f"glan: dist.incomplete: {NOT_OURS}\n")
    assert server.stats()["requests"] == 0
    assert tree(tmp_path) == before
    assert_untouched(outside)


def test_out_replaces_an_empty_folder_and_a_glan_dataset(server, outside, tmp_path, monkeypatch):
    taxonomy = out_project(tmp_path)
    monkeypatch.chdir(tmp_path / "project")
    (tmp_path / "project" / "dist").mkdir()
    flags = ["--taxonomy", taxonomy, "--preset", "smoke", "--disciplines", "Organic Chemistry", "--model", "test-model",
             "--base-url", server.base_url]
    assert glan("build", *flags)[0] == 0  # into the empty dist beside the taxonomy
    first = (tmp_path / "project" / "dist" / "glan_manifest.json").read_bytes()
    assert glan("build", *flags, "--seed", "7")[0] == 0  # over the glan dataset there
    assert (tmp_path / "project" / "dist" / "glan_manifest.json").read_bytes() != first
    assert sorted(path.name for path in (tmp_path / "project").iterdir()) == [
        ".glan", "dist", "important", "prompts", "taxonomy.yaml"]
    assert (tmp_path / "project" / "important" / "notes.txt").read_text() == "the user's own\n"
    assert_untouched(outside)


@pytest.mark.parametrize("lock", [".glan/lock", ".dist.lock"], ids=["work-dir", "folder"])
def test_a_symbolic_link_at_a_lock_file_is_refused_with_one_line_and_its_target_is_untouched(server, outside, tmp_path,
                                                                                            lock):
    """glan empties its lock files and writes its pid into them: a link planted where one goes (the work dir's lock,
    or .<out>.lock beside the folder) would have it overwrite the link's target."""
    taxonomy = project(tmp_path / "project")
    (tmp_path / ".glan").mkdir()
    (tmp_path / lock).symlink_to(outside / "sentinel.txt")
    server.reset()
    code, out, err = glan("build", *run_flags(taxonomy, server, tmp_path / ".glan"), "--out", tmp_path / "dist")

    assert (code, out) == (2, "")
    assert err == (f"glan: {tmp_path / lock}: a symbolic link where glan keeps a lock file, which it empties and "
                   "writes; glan never writes one through a link. Remove the link, then run the same command again.\n")
    assert server.stats()["requests"] == 0
    assert (tmp_path / lock).is_symlink()
    assert_untouched(outside)


# -- names bounded as files need them ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry, field, problem", [
    ({"name": "A" * 5000}, "name",
     'a name of 5,000 characters, more than 120. Give the discipline a shorter name, e.g. "name: Organic Chemistry", '
     "and say more in its description."),
    ({"name": "Long", "id": "a" * 200}, "id",
     "id of 200 characters, more than 120 (it names the discipline's files). Write a shorter id."),
], ids=["name", "id"])
def test_a_name_too_long_for_a_file_is_the_same_one_line_from_validate_and_build(server, outside, tmp_path, entry, field,
                                                                                 problem):
    taxonomy = project(tmp_path / "project")
    data = yaml.safe_load(taxonomy.read_text())
    data["fields"][0]["subfields"][0]["disciplines"].append(entry)
    taxonomy.write_text(yaml.safe_dump(data, sort_keys=False, width=10_000))
    lines = taxonomy.read_text().splitlines()
    key = "name" if field == "name" else "id"
    line = next(number for number, text in enumerate(lines, 1) if text.strip().lstrip("- ").startswith(f"{key}: ")
                and len(text) > 150)
    where = f"fields[0].subfields[0].disciplines[{len(data['fields'][0]['subfields'][0]['disciplines']) - 1}]"
    expected = f"glan: {taxonomy}:{line}: {where}.{field}: {problem}\n"
    for code, out, err in validate_estimate_build(taxonomy, server, tmp_path):
        assert (code, out, err) == (2, "", expected)
    assert_untouched(outside)
