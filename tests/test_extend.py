"""Extending the taxonomy pays only for what is new; removing or editing changes exactly what it should."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset

from glan.cli import main
from glan.stages import CONFIGS
from tests.test_hub import _loads, _push, client, hub  # noqa: F401 (pytest fixtures)

GENERATION = {
    "subjects": {"samples": 2, "per_sample": {"min": 1, "max": 2}},
    "syllabus": {"sessions": {"min": 2, "max": 3}, "key_concepts": {"min": 2, "max": 3}},
    "questions": {"per_subject": 3},
    "quality": {"test_split": {"per_discipline": 1}},
}
NAMES = {"a": "Organic Chemistry", "b": "Linear Algebra", "c": "Music Theory", "d": "Plate Tectonics"}


def write_project(root: Path, version: str, keys: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "prompts").exists():
        shutil.copytree("prompts", root / "prompts")
    taxonomy = {"version": version, "generation": GENERATION, "fields": [{"name": "Sciences", "subfields": [
        {"name": "Mixed", "disciplines": [{"name": NAMES[key]} for key in keys]}]}]}
    (root / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy, sort_keys=False))
    return root / "taxonomy.yaml"


def build(server, taxonomy: Path, work: Path, out: Path, capsys=None) -> tuple[int, int]:
    server.reset()
    code = main(["build", "--taxonomy", str(taxonomy), "--model", "test-model", "--base-url", server.base_url,
                 "--work-dir", str(work), "--out", str(out)])
    return code, server.stats()["requests"]


def rows_by_discipline(out: Path) -> dict[str, list[str]]:
    """Every row of every config and split, serialized, grouped by discipline."""
    grouped: dict[str, list[str]] = {}
    manifest = json.loads((out / "glan_manifest.json").read_text())
    for config in CONFIGS:
        for split in manifest["configs"][config]["splits"]:
            for row in load_dataset(str(out), config, split=split).to_list():
                grouped.setdefault(row["discipline_id"], []).append(f"{config}/{split} " + json.dumps(row, sort_keys=True))
    return grouped


@pytest.fixture(scope="module")
def server():
    from tests.servers import start_openai_server

    with start_openai_server() as started:
        yield started


def test_adding_two_disciplines_pays_only_for_them(server, tmp_path, capsys):
    work, out = tmp_path / ".glan", tmp_path / "dist"
    code, _ = build(server, write_project(tmp_path / "v1", "1.0.0", "ab"), work, out)
    assert code == 0
    before = rows_by_discipline(out)
    code, new_only = build(server, write_project(tmp_path / "alone", "1.0.0", "cd"), tmp_path / "fresh", tmp_path / "x")
    assert code == 0 and new_only > 0

    code, requests = build(server, write_project(tmp_path / "v2", "1.1.0", "abcd"), work, out)
    assert code == 0
    assert requests == new_only
    after = rows_by_discipline(out)
    assert set(after) == {"organic-chemistry", "linear-algebra", "music-theory", "plate-tectonics"}
    for discipline in ("organic-chemistry", "linear-algebra"):
        assert after[discipline] == before[discipline]


def test_removing_a_discipline_removes_exactly_its_rows(server, tmp_path):
    work, out = tmp_path / ".glan", tmp_path / "dist"
    assert build(server, write_project(tmp_path / "v1", "1.0.0", "abc"), work, out)[0] == 0
    before = rows_by_discipline(out)
    code, requests = build(server, write_project(tmp_path / "v2", "1.1.0", "ac"), work, out)
    assert (code, requests) == (0, 0)
    assert rows_by_discipline(out) == {key: rows for key, rows in before.items() if key != "linear-algebra"}


def test_editing_the_questions_prompt_repays_exactly_questions_and_answers(server, tmp_path):
    work, out = tmp_path / ".glan", tmp_path / "dist"
    taxonomy = write_project(tmp_path / "p", "1.0.0", "ab")
    assert build(server, taxonomy, work, out)[0] == 0
    before = rows_by_discipline(out)
    prompt = tmp_path / "p" / "prompts" / "questions.yaml"
    prompt.write_text(prompt.read_text().replace("no hints, no answer.", "no hints, no answer, no preamble."))
    code, requests = build(server, taxonomy, work, out)
    assert code == 0
    syllabi = load_dataset(str(out), "syllabi", split="train").num_rows
    questions = load_dataset(str(out), "questions", split="train").num_rows
    assert requests == syllabi * GENERATION["questions"]["per_subject"] + questions
    after = rows_by_discipline(out)
    for discipline in before:
        unchanged = [row for row in after[discipline] if row.split(" ")[0].split("/")[0] in ("taxonomy", "subjects", "syllabi")]
        assert unchanged == [row for row in before[discipline] if row.split(" ")[0].split("/")[0] in ("taxonomy", "subjects", "syllabi")]


def test_changed_content_under_the_same_version_is_warned_about(server, tmp_path, capsys):
    work, out = tmp_path / ".glan", tmp_path / "dist"
    assert build(server, write_project(tmp_path / "v1", "1.0.0", "a"), work, out)[0] == 0
    assert "warning" not in capsys.readouterr().err
    assert build(server, write_project(tmp_path / "v1b", "1.0.0", "ab"), work, out)[0] == 0
    assert ("glan: warning: the data changed but the taxonomy version is still 1.0.0. Bump `version:` in "
            "taxonomy.yaml: `glan push` refuses new content under an existing version.") in capsys.readouterr().err


def test_a_rebuilt_extension_is_published_as_a_new_version(server, hub, client, tmp_path):
    """The maintainer's loop end to end: build, push; add two disciplines, bump, rebuild, push."""
    repo, work, out = "glan-tester/extended", tmp_path / ".glan", tmp_path / "dist"
    assert build(server, write_project(tmp_path / "v1", "1.0.0", "ab"), work, out)[0] == 0
    shutil.copytree(out, tmp_path / "dist-v1")
    (first_push,) = client(_push(out, repo))
    assert first_push["exit"] == 0, first_push["err"]
    new_only = build(server, write_project(tmp_path / "alone", "1.0.0", "cd"), tmp_path / "fresh", tmp_path / "x")[1]

    code, requests = build(server, write_project(tmp_path / "v2", "1.1.0", "abcd"), work, out)
    assert (code, requests) == (0, new_only)
    results = client(_push(out, repo), *_loads(repo, "v1.0.0"), *_loads(tmp_path / "dist-v1"), *_loads(repo))
    second_push, old_release, old_folder, latest = results[0], results[1:6], results[6:11], results[11:]
    assert second_push["exit"] == 0, second_push["err"]
    assert old_release == old_folder
    assert sum(len(rows) for rows in latest[4].values()) > sum(len(rows) for rows in old_release[4].values())
    assert [commit.title for commit in hub.commits(repo)] == ["initial commit", "Release v1.0.0", "Release v1.1.0"]
    assert list(hub.tags(repo)) == ["v1.0.0", "v1.1.0"]
    changelog = hub.commits(repo)[-1].message
    assert "- Disciplines added (2):" in changelog
    assert "Music Theory (`music-theory`" in changelog and "Plate Tectonics (`plate-tectonics`" in changelog
