"""The whole pipeline against the OpenAI-protocol test server: five configs, counts, lineage, cache."""

import json

import pytest
from datasets import load_dataset

from glan.cli import main
from glan.taxonomy import load_taxonomy
from tests.cached import responses
from tests.helpers import PRESETS, project

DISCIPLINES = ("Organic Chemistry", "Linear Algebra")
SMOKE = load_taxonomy("taxonomy.yaml").settings("smoke")


def build(server, tmp, name="run", extra=()):
    out, work = tmp / name / "dist", tmp / name / ".glan"
    code = main(["build", "--preset", "smoke", "--disciplines", ",".join(DISCIPLINES), "--model", "test-model",
                 "--base-url", server.base_url, "--out", str(out), "--work-dir", str(work), *extra])
    return code, out, work


def load(out, config, split="train"):
    return load_dataset(str(out), config, split=split).to_list()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from tests.servers import start_openai_server

    tmp = tmp_path_factory.mktemp("pipeline")
    with start_openai_server() as server:
        code, out, work = build(server, tmp)
        first_requests = server.stats()["requests"]
        yield {"server": server, "tmp": tmp, "code": code, "out": out, "work": work, "requests": first_requests}


def test_build_succeeds_and_writes_five_configs(built):
    assert built["code"] == 0
    card = (built["out"] / "README.md").read_text()
    assert f"license: {load_taxonomy('taxonomy.yaml').license}\n" in card
    for config in ("taxonomy", "subjects", "syllabi", "questions", "instructions"):
        assert list((built["out"] / config).glob("train-*.parquet"))
        assert f"config_name: {config}" in card
        assert load(built["out"], config)


def test_subjects_are_the_distinct_names_the_model_returned(built):
    texts = [text for stage, text in responses(built["work"], "stage, text") if stage == "subjects"]
    returned = {(s["name"].strip().casefold(), s["level"]) for text in texts for s in json.loads(text)["subjects"]}
    rows = load(built["out"], "subjects")
    assert len(texts) == len(DISCIPLINES) * SMOKE.subjects.samples
    assert {(row["subject"].casefold(), row["level"]) for row in rows} == returned
    per_discipline = {}
    for row in rows:
        per_discipline.setdefault(row["discipline_id"], []).append((row["subject"].casefold(), row["level"]))
    assert all(len(names) == len(set(names)) for names in per_discipline.values())


def test_counts_follow_the_settings(built):
    subjects = load(built["out"], "subjects")
    syllabi = load(built["out"], "syllabi")
    questions = load(built["out"], "questions")
    instructions = load(built["out"], "instructions") + load(built["out"], "instructions", "test")
    assert sorted(s["subject_id"] for s in syllabi) == sorted(s["subject_id"] for s in subjects)
    bounds = SMOKE.syllabus
    for syllabus in syllabi:
        assert bounds.sessions.min <= len(syllabus["sessions"]) <= bounds.sessions.max
        for session in syllabus["sessions"]:
            assert 1 <= len(session["key_concepts"]) <= bounds.key_concepts.max
    assert len(questions) == len(syllabi) * SMOKE.questions.per_subject
    assert sorted(q["question_id"] for q in questions) == sorted(i["question_id"] for i in instructions)


def test_both_strategies_in_the_mix_and_two_session_rows_use_both_sessions(built):
    syllabi = {s["subject_id"]: s for s in load(built["out"], "syllabi")}
    questions = load(built["out"], "questions")
    strategies = [q["strategy"] for q in questions]
    assert set(strategies) == {"single_session", "two_sessions"}
    for question in questions:
        sessions = syllabi[question["subject_id"]]["sessions"]
        concepts = set(question["key_concepts"])
        if question["strategy"] == "two_sessions":
            first, second = question["session_indices"]
            assert first < second
            assert concepts & set(sessions[first]["key_concepts"])
            assert concepts & set(sessions[second]["key_concepts"])
            assert 2 <= len(concepts) <= SMOKE.questions.two_concepts.max
        else:
            (index,) = question["session_indices"]
            assert concepts <= set(sessions[index]["key_concepts"])
            assert 1 <= len(concepts) <= SMOKE.questions.single_concepts.max


def test_every_parent_id_resolves(built):
    out = built["out"]
    disciplines = {row["discipline_id"] for row in load(out, "taxonomy")}
    assert len(disciplines) == len(DISCIPLINES)
    subjects = {row["subject_id"] for row in load(out, "subjects")}
    questions = {row["question_id"] for row in load(out, "questions")}
    for config in ("subjects", "syllabi", "questions", "instructions"):
        for row in load(out, config):
            assert row["discipline_id"] in disciplines
            if config != "subjects":
                assert row["subject_id"] in subjects
            if config == "instructions":
                assert row["question_id"] in questions
                assert [m["role"] for m in row["messages"]] == ["user", "assistant"]


def test_rerun_makes_zero_requests_and_rebuild_is_byte_identical(built):
    server, out = built["server"], built["out"]
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.parquet")}
    server.reset()
    import shutil

    shutil.rmtree(out)
    code, _, _ = build(server, built["tmp"])
    assert code == 0
    assert server.stats()["requests"] == 0
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.parquet")}
    assert after == before


def test_ids_are_identical_in_a_fresh_work_dir(built):
    code, out, _ = build(built["server"], built["tmp"], name="fresh")
    assert code == 0
    for config, id_column in (("subjects", "subject_id"), ("questions", "question_id")):
        assert [r[id_column] for r in load(out, config)] == [r[id_column] for r in load(built["out"], config)]


def test_paper_preset_prints_the_request_count_before_starting(built, capsys, tmp_path):
    paper = load_taxonomy("taxonomy.yaml").settings("paper")
    # The shipped paper preset, with smoke's quality block: no benchmark to load from the Hub.
    taxonomy = project(tmp_path / "project", paper=PRESETS["paper"])
    code, _, _ = build(built["server"], built["tmp"], name="paper",
                       extra=["--taxonomy", str(taxonomy), "--preset", "paper", "--disciplines", "Organic Chemistry",
                              "--max-requests", "1"])
    subject_calls = paper.subjects.samples
    subjects = subject_calls * (paper.subjects.per_sample.min + paper.subjects.per_sample.max) // 2
    total = subject_calls + subjects + 2 * subjects * paper.questions.per_subject
    err = capsys.readouterr().err
    assert f"glan: about to make up to {total:,} requests for 1 discipline (" in err
    assert code == 1
    assert "stopped early: --max-requests 1 reached" in err


def test_the_builder_used_by_import_gives_the_rows_of_the_folder(built, tmp_path):
    from glan_dataset import Glan

    builder = Glan(config_name="questions", taxonomy="taxonomy.yaml", preset="smoke", disciplines=DISCIPLINES,
                   model="test-model", base_url=built["server"].base_url, work_dir=str(built["work"]),
                   cache_dir=str(tmp_path / "datasets"))
    builder.download_and_prepare()
    assert str(builder.info.version) == load_taxonomy("taxonomy.yaml").version
    assert builder.as_dataset("train").to_list() == load(built["out"], "questions")
