"""Dedup and decontamination as part of `glan build`, on questions the test server repeats on purpose.

The server answers every question request with a text from a small pool: one text and a variant that
differs only in case, inner spacing and punctuation (an exact repeat), one text and a variant with one word
changed (a near repeat, Jaccard 19/21), one text that shares a 13-word run with a benchmark file the
test writes, and one unrelated text. What the build must drop is computed here from what the server
sent (its log), not from anything glan reports.
"""

import json
from collections import Counter

import pytest

from tests.helpers import SMOKE, glan, project, rows
from tests.servers import start_openai_server

BENCHMARK_ITEM = ("A train leaves the station at noon traveling at sixty miles per hour toward a city that lies "
                  "two hundred and forty miles away across the plains")
BASE = ("Explain how the mitochondria convert glucose into usable energy during aerobic respiration and why "
        "oxygen serves as final electron acceptor")
PLATES = ("Describe how tectonic plates move across the mantle and explain why earthquakes cluster along their "
          "boundaries near deep ocean trenches")
# text -> (its family, its wording): one row per family survives; texts of one wording are exact repeats.
POOL = {
    BASE: ("mitochondria", "base"),
    "explain HOW the mitochondria  convert glucose into usable energy, during aerobic respiration; "
    "and why oxygen serves as final electron acceptor?!": ("mitochondria", "base"),
    PLATES: ("plates", "plates"),
    PLATES.replace("deep", "steep"): ("plates", "steep"),
    "Homework: a train leaves the station at noon traveling at sixty miles per hour toward a distant town. "
    "How long does the trip take?": ("contaminated", "train"),
    "Compare the structure of DNA and RNA, and explain how base pairing supports faithful replication of genes":
        ("genetics", "genetics"),
}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    benchmark = tmp / "trains.jsonl"
    benchmark.write_text(json.dumps({"id": 7, "text": BENCHMARK_ITEM}) + "\n")
    taxonomy = project(tmp / "project", repeats={
        "questions": {**SMOKE["questions"], "per_subject": 8},
        "quality": {**SMOKE["quality"], "decontamination": {
            "ngram": 13, "benchmarks": [{"name": "planted", "path": str(benchmark), "text_column": "text"}]}},
    })
    with start_openai_server(question_pool=list(POOL)) as server:
        code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "repeats", "--disciplines",
                            "Organic Chemistry", "--model", "test-model", "--base-url", server.base_url,
                            "--out", tmp / "dist", "--work-dir", tmp / ".glan")
        log = server.log()
    sent = Counter(record["content"] for record in log if record["output"] == "question" and record["status"] == 200)
    return {"code": code, "err": err, "out": tmp / "dist", "log": log, "sent": sent}


def expected_drops(sent: Counter) -> dict[str, int]:
    """Exact: every repeat of a text once normalised; near: the second text of the plates family;
    contaminated: the one contaminated question left after dedup."""
    wordings = Counter()
    for text, count in sent.items():
        wordings[POOL[text][1]] += count
    return {"exact": sum(count - 1 for count in wordings.values()), "near": 1, "contaminated": 1}


def test_every_kind_of_repeat_was_served(built):
    assert built["code"] == 0, built["err"]
    # The strict endpoint took every structured request in OpenAI's own mode, and questions and answers as free text.
    assert {(record["output"], record["response_format"], record["status"]) for record in built["log"]} == {
        ("SubjectList", "json_schema", 200), ("Syllabus", "json_schema", 200), ("question", None, 200),
        ("answer", None, 200)}
    assert set(built["sent"]) == set(POOL)  # each text at least once, so every step has work
    assert sum(built["sent"].values()) > 2 * len(POOL)


def test_one_question_per_family_survives_and_the_contaminated_one_is_gone(built):
    questions = rows(built["out"], "questions")
    assert Counter(POOL[row["question"]][0] for row in questions) == {"mitochondria": 1, "plates": 1, "genetics": 1}
    instructions = rows(built["out"], "instructions", ("train", "test"))
    assert sorted(row["question_id"] for row in instructions) == sorted(row["question_id"] for row in questions)
    answers_asked = [record for record in built["log"] if record["output"] == "answer"]
    assert len(answers_asked) == len(questions)  # a dropped question costs no answer


def test_stats_card_and_summary_count_what_was_dropped(built):
    expected = expected_drops(built["sent"])
    stats = json.loads((built["out"] / "stats.json").read_text())["quality"]
    assert {reason: stats["dropped"][reason]["total"] for reason in expected} == expected
    assert stats["benchmark_hits"] == {"planted": {"question": 1, "answer": 0}}
    card = (built["out"] / "README.md").read_text()
    for reason, count in expected.items():
        assert f"| {reason} | {count} |" in card
    summary = next(line for line in built["err"].splitlines() if line.startswith("quality: dropped"))
    for reason, count in expected.items():
        assert f"{reason} {count:,}" in summary
