"""Stage logic on planted outputs: subject dedup, question sampling."""

from pathlib import Path

from glan import schemas
from glan.prompts import load_prompt
from glan.stages import StageContext
from glan.stages.questions import Questions
from glan.stages.subjects import Subjects
from glan.taxonomy import load_taxonomy

SETTINGS = load_taxonomy("taxonomy.yaml").settings("smoke")
PROMPTS = {name: load_prompt(Path("prompts"), name) for name in ("subjects", "questions")}
DISCIPLINE = {"discipline_id": "linear-algebra", "field": "Formal Sciences", "subfield": "Mathematics",
              "discipline": "Linear Algebra", "description": ""}


def context(stage):
    return StageContext(SETTINGS, "m", PROMPTS[stage].fingerprint)


def test_subject_samples_are_merged_and_exact_repeats_dropped():
    model = schemas.subject_list_model(SETTINGS.levels, 1, 5)
    level = SETTINGS.levels[0]
    samples = [
        model.model_validate({"subjects": [{"name": "Vector  Spaces.", "level": level, "subtopics": ["bases"]},
                                           {"name": "Eigenvalues", "level": level, "subtopics": ["spectra"]}]}),
        model.model_validate({"subjects": [{"name": "vector spaces", "level": level, "subtopics": ["span"]},
                                           {"name": "Eigenvalues", "level": SETTINGS.levels[1], "subtopics": ["x y"]},
                                           {"name": "Matrix Groups", "level": level, "subtopics": ["GL(n)"]}]}),
    ]
    rows = Subjects(context("subjects")).parse(DISCIPLINE, samples)
    assert [(row["subject"], row["level"]) for row in rows] == [
        ("Vector Spaces", level), ("Eigenvalues", level), ("Eigenvalues", SETTINGS.levels[1]), ("Matrix Groups", level)]
    assert rows[0]["subtopics"] == ["bases"]  # the first sample's version survives
    assert len({row["subject_id"] for row in rows}) == 4


def syllabus(subject_id, sessions):
    return {"subject_id": subject_id, **{k: DISCIPLINE[k] for k in ("discipline_id", "field", "subfield", "discipline")},
            "subject": "Vector Spaces", "level": "introductory", "model": "m", "prompt_fingerprint": "f",
            "sessions": [{"index": i, "title": f"S{i}", "description": "d", "key_concepts": concepts}
                         for i, concepts in enumerate(sessions)]}


def test_question_plans_are_deterministic_per_subject_and_respect_the_strategies():
    stage = Questions(context("questions"))
    one = syllabus("a", [["span", "basis", "dimension"], ["kernel", "image"], ["rank"]])
    other = syllabus("b", [["x", "y"], ["z"]])
    alone = stage.plan(one)
    assert alone == list(stage.inputs([other, one]))[len(stage.plan(other)):]  # another subject moves nothing
    assert len(alone) == SETTINGS.questions.per_subject
    for plan in alone:
        sessions = [one["sessions"][i]["key_concepts"] for i in plan["session_indices"]]
        if plan["strategy"] == "two_sessions":
            assert all(set(plan["key_concepts"]) & set(concepts) for concepts in sessions)
        else:
            assert set(plan["key_concepts"]) <= set(sessions[0])


def test_a_one_session_syllabus_only_gets_single_session_questions():
    stage = Questions(context("questions"))
    plans = stage.plan(syllabus("c", [["only"]]))
    assert {plan["strategy"] for plan in plans} == {"single_session"}
    assert all(plan["key_concepts"] == ["only"] for plan in plans)


def test_the_config_names_the_command_line_offers_are_the_stage_registrys():
    from glan.configs import CONFIGS, DEFAULT_CONFIG, TAXONOMY
    from glan.stages import STAGES, Answers

    assert CONFIGS == (TAXONOMY, *dict.fromkeys(stage.config for stage in STAGES))
    assert DEFAULT_CONFIG == Answers.config
