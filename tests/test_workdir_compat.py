"""A work dir filled by glan 0.1 (tests/fixtures/workdir_v1: its taxonomy, prompts, cache and the rows it
built) still builds with zero requests and the same rows: cache keys and row format are a contract."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from glan import __version__
from glan.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "workdir_v1"
SPLITS = {"taxonomy": ["train"], "subjects": ["train"], "syllabi": ["train"], "questions": ["train"],
          "instructions": ["train", "test"]}


def rows(folder: Path, config: str, split: str) -> set[str]:
    tables = [pq.read_table(path) for path in sorted((folder / config).glob(f"{split}-*.parquet"))]
    return {json.dumps(row, sort_keys=True) for table in tables for row in table.to_pylist()}


def test_a_work_dir_of_glan_0_1_builds_with_zero_requests_and_the_same_rows(openai_server, tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "v1")
    root = tmp_path / "v1"
    code = main(["build", "--taxonomy", str(root / "taxonomy.yaml"), "--preset", "smoke",
                 "--disciplines", "Organic Chemistry,Linear Algebra", "--model", "test-model",
                 "--base-url", openai_server.base_url, "--work-dir", str(root / "work"), "--out", str(tmp_path / "dist")])
    assert code == 0
    assert openai_server.stats()["requests"] == 0
    for config, splits in SPLITS.items():
        for split in splits:
            expected = rows(root / "rows", config, split)
            assert expected, (config, split)
            assert rows(tmp_path / "dist", config, split) == expected, (config, split)


def test_a_prompts_folder_naming_the_json_forms_keeps_asking_for_json(openai_server, tmp_path):
    """The fixture's prompts are glan 0.1's own: questions and answers as JSON (output_model HomeworkQuestion and
    Answer). A discipline the fixture's cache never saw is asked for them as JSON, and its rebuild, units
    removed, replays its work dir with zero requests into the same rows."""
    shutil.copytree(FIXTURE, tmp_path / "v1")
    root = tmp_path / "v1"

    def build(out):
        return main(["build", "--taxonomy", str(root / "taxonomy.yaml"), "--preset", "smoke", "--disciplines",
                     "Genetics", "--model", "test-model", "--base-url", openai_server.base_url, "--work-dir",
                     str(root / "work"), "--out", str(tmp_path / out)])

    assert build("first") == 0
    asked = {(record["output"], record["response_format"]) for record in openai_server.log()}
    assert asked == {("SubjectList", "json_schema"), ("Syllabus", "json_schema"), ("HomeworkQuestion", "json_schema"),
                     ("Answer", "json_schema")}
    answers = [json.loads(record["content"])["answer"] for record in openai_server.log()
               if record["output"] == "Answer"]
    shutil.rmtree(root / "work" / "units")
    openai_server.reset()
    assert build("again") == 0
    assert openai_server.stats()["requests"] == 0
    for config, splits in SPLITS.items():
        for split in splits:
            assert rows(tmp_path / "again", config, split) == rows(tmp_path / "first", config, split), (config, split)
    instructions = rows(tmp_path / "again", "instructions", "train") | rows(tmp_path / "again", "instructions", "test")
    assert sorted(json.loads(row)["messages"][1]["content"] for row in instructions) == sorted(answers)


CURRENT = Path(__file__).parent / "fixtures" / "workdir_v2"


def test_a_work_dir_of_glan_0_2_builds_with_zero_requests_into_the_same_rows(openai_server, tmp_path, capsys):
    """tests/fixtures/workdir_v2 was made by glan 0.2 (the layout before builder/plan.py and builder/execute/): its
    taxonomy and prompts, its work dir (units, caches) and the folder it built. Its units are of row format 3 and
    this glan's are of 4 (answers decontaminated too, hits per side, near-twin figures), so each unit runs again,
    from the cache: no request, and every data file and input of the folder has the same bytes. stats.json gains the
    decontamination and held-out blocks and says the same of the rest; the card and the manifest differ in the
    quality section and glan's version only."""
    shutil.copytree(CURRENT, tmp_path / "v2")
    root = tmp_path / "v2"
    code = main(["build", "--taxonomy", str(root / "taxonomy.yaml"), "--preset", "smoke", "--disciplines",
                 "Organic Chemistry,Linear Algebra", "--model", "test-model", "--base-url", openai_server.base_url,
                 "--work-dir", str(root / "work"), "--out", str(tmp_path / "dist")])
    assert code == 0
    assert openai_server.stats()["requests"] == 0
    assert "already built with these settings" not in capsys.readouterr().err  # row format 4: run again, from cache
    expected = {path.relative_to(root / "folder"): path.read_bytes() for path in (root / "folder").rglob("*")
                if path.is_file()}
    built = {path.relative_to(tmp_path / "dist"): path.read_bytes() for path in (tmp_path / "dist").rglob("*")
             if path.is_file()}
    assert sorted(built) == sorted(expected)
    for path, data in expected.items():
        if path.name not in ("glan_manifest.json", "README.md", "stats.json"):
            assert built[path] == data, path

    stats, before = json.loads(built[Path("stats.json")]), json.loads(expected[Path("stats.json")])
    assert {key: stats[key] for key in before} == before
    assert stats["decontamination"] == {
        "ngram": 13, "min_words": 8, "benchmarks": [],
        "unchecked": ["gsm8k", "math", "humaneval", "mbpp", "bbh", "arc", "mmlu"]}
    assert stats["held_out"]["test_questions"] == {"linear-algebra": 1, "organic-chemistry": 1}
    manifest, made = json.loads(built[Path("glan_manifest.json")]), json.loads(expected[Path("glan_manifest.json")])
    made["reproduce"]["glan_version"] = __version__
    assert {**manifest, "stats": None} == {**made, "stats": None}
    card, card_before = built[Path("README.md")].decode(), expected[Path("README.md")].decode()
    made_by = made_by_version(expected)
    card_before = card_before.replace(f"glan {made_by}", f"glan {__version__}").replace(
        f'"glan=={made_by}"', f'"glan=={__version__}"')
    assert _outside_quality(card) == _outside_quality(card_before)
    assert "#### Decontamination" in card and "#### GLAN-Test across disciplines" in card


def made_by_version(folder: dict) -> str:
    return json.loads(folder[Path("glan_manifest.json")])["reproduce"]["glan_version"]


def _outside_quality(card: str) -> tuple[str, str]:
    before, rest = card.split("### Quality", 1)
    return before, rest.split("## Limitations and biases", 1)[1]
