"""A work dir filled by glan 0.1 (tests/fixtures/workdir_v1: its taxonomy, prompts, cache and the rows it
built) still builds with zero requests and the same rows: cache keys and row format are a contract."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from glan.cli import main
from glan.schemas import JUDGED

FIXTURE = Path(__file__).parent / "fixtures" / "workdir_v1"
SPLITS = {"taxonomy": ["train"], "subjects": ["train"], "syllabi": ["train"], "questions": ["train"],
          "instructions": ["train", "test"]}


def rows(folder: Path, config: str, split: str) -> set[str]:
    tables = [pq.read_table(path) for path in sorted((folder / config).glob(f"{split}-*.parquet"))]
    return {json.dumps(row, sort_keys=True) for table in tables for row in table.to_pylist()}


def without_judge(rows: set[str]) -> set[str]:
    """Rows as an older glan wrote them: the judge's columns (row format 4), null in a build without the judge,
    taken out after checking they are null."""
    plain = set()
    for text in rows:
        row = json.loads(text)
        judged = {column: row.pop(column, None) for column in JUDGED}
        assert judged == dict.fromkeys(JUDGED), judged
        plain.add(json.dumps(row, sort_keys=True))
    return plain


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
            assert without_judge(rows(tmp_path / "dist", config, split)) == expected, (config, split)


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
    taxonomy and prompts, its work dir (units, caches) and the folder it built. Built again by this glan, whose row
    format added the judge's columns (null without the judge), answers decontaminated too and near-twin figures, and
    whose stats the repetition, decontamination and held-out figures, every unit runs again from the cache (no
    request) into the same rows, and every file but the instructions' shards, the manifest, the card and stats.json
    has the same bytes; the charts are new."""
    shutil.copytree(CURRENT, tmp_path / "v2")
    root = tmp_path / "v2"
    code = main(["build", "--taxonomy", str(root / "taxonomy.yaml"), "--preset", "smoke", "--disciplines",
                 "Organic Chemistry,Linear Algebra", "--model", "test-model", "--base-url", openai_server.base_url,
                 "--work-dir", str(root / "work"), "--out", str(tmp_path / "dist")])
    assert code == 0
    assert openai_server.stats()["requests"] == 0
    assert "already built with these settings" not in capsys.readouterr().err  # a new row format: run again
    expected = {path.relative_to(root / "folder"): path.read_bytes() for path in (root / "folder").rglob("*")
                if path.is_file()}
    built = {path.relative_to(tmp_path / "dist"): path.read_bytes() for path in (tmp_path / "dist").rglob("*")
             if path.is_file()}
    assert {path for path in built if path.parts[0] != "charts"} == set(expected)
    for config, splits in SPLITS.items():
        for split in splits:
            assert without_judge(rows(tmp_path / "dist", config, split)) == rows(root / "folder", config, split)
    changed = {Path("glan_manifest.json"), Path("README.md"), Path("stats.json")}
    for path, data in expected.items():
        if path not in changed and path.parts[0] != "instructions":
            assert built[path] == data, path
    stats, before = json.loads(built[Path("stats.json")]), json.loads(expected[Path("stats.json")])
    assert stats["decontamination"] == {
        "ngram": 13, "min_words": 8, "benchmarks": [],
        "unchecked": ["gsm8k", "math", "humaneval", "mbpp", "bbh", "arc", "mmlu"]}
    assert stats["held_out"]["test_questions"] == {"linear-algebra": 1, "organic-chemistry": 1}


def test_an_estimate_reads_a_work_dir_of_glan_0_2_whose_caches_count_no_cached_tokens(tmp_path, capsys):
    """The caches of glan 0.2 have no cached_tokens column, and an estimate opens them read-only (adding nothing):
    it sums the column that is there, counting none cached, and finds every request cached."""
    shutil.copytree(CURRENT, tmp_path / "v2")
    root = tmp_path / "v2"
    caches = {path: path.read_bytes() for path in (root / "work").rglob("*.sqlite")}
    code = main(["estimate", "--taxonomy", str(root / "taxonomy.yaml"), "--preset", "smoke", "--disciplines",
                 "Organic Chemistry,Linear Algebra", "--model", "test-model", "--base-url", "http://127.0.0.1:9/v1",
                 "--work-dir", str(root / "work")])
    out = capsys.readouterr().out
    assert code == 0
    total = next(line.split() for line in out.splitlines() if line.startswith("total "))
    assert total[1:5] == ["94", "94", "0", "15,321"] and total[5] == "0"  # requests, cached, to send, in, cached in
    assert {path: path.read_bytes() for path in caches} == caches


def test_cache_check_reads_the_caches_of_glan_0_2_which_count_no_cached_tokens(tmp_path, capsys):
    shutil.copytree(CURRENT, tmp_path / "v2")
    work = tmp_path / "v2" / "work"
    assert main(["cache", "check", "--work-dir", str(work)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{work}: 3 cache files, no damage found by SQLite's integrity check, every response readable.")
