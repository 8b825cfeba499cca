"""Items whose every attempt fails, as the endpoint sees it and as the user sees it.

The test server spoils the answers of a fixed share of questions on every attempt (keyed by the
request's messages): some are cut off at the token limit (finish_reason "length"), some hold a form
feed. An item is one planned request: a subject sample, a syllabus, a question, an answer.
"""

import json
from collections import defaultdict

import pytest
import yaml

from tests.helpers import REPO, SMOKE, glan, rows
from tests.servers import start_openai_server

DISCIPLINES = "Organic Chemistry,Linear Algebra"
ITEM_FAULTS = {"length": 0.2, "form_feed": 0.2}
ANSWER_MAX_TOKENS = yaml.safe_load((REPO / "prompts" / "answers.yaml").read_text())["params"]["max_tokens"]


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """One build under the default threshold (1%), then two replays of it from the cache, with
    --max-failure-rate just under and just over the share of items that failed. A build over the
    threshold is incomplete: it leaves --out alone and writes what it has beside it."""
    tmp = tmp_path_factory.mktemp("failing")
    out, incomplete = tmp / "dist", tmp / "dist.incomplete"
    with start_openai_server(item_faults=ITEM_FAULTS, item_fault_output="answer") as server:
        args = ["build", "--preset", "smoke", "--disciplines", DISCIPLINES, "--model", "test-model",
                "--base-url", server.base_url, "--out", out, "--work-dir", tmp / ".glan"]
        first = glan(*args)
        first_left_out_alone = not out.exists()
        log = server.log()
        answers = defaultdict(list)  # messages -> the requests for that answer, in arrival order
        for record in log:
            if record["output"] == "answer":
                answers[record["messages_sha256"]].append(record)
        failed = sum(requests[0]["fault"] is not None for requests in answers.values())
        subjects, syllabi = rows(incomplete, "subjects"), rows(incomplete, "syllabi")
        questions = rows(incomplete, "questions")
        items = len(DISCIPLINES.split(",")) * SMOKE["subjects"]["samples"] + len(subjects) + \
            len(syllabi) * SMOKE["questions"]["per_subject"] + len(questions)
        rate = failed / items
        server.reset()
        below = glan(*args, "--max-failure-rate", repr(rate - 0.5 / items))
        below_left_out_alone = not out.exists()
        above = glan(*args, "--max-failure-rate", repr(rate + 0.5 / items))
        replayed = server.stats()["requests"]
    return {"first": first, "below": below, "above": above, "replayed": replayed, "answers": answers,
            "failed": failed, "items": items, "out": out, "questions": questions, "syllabi": syllabi,
            "left_out_alone": first_left_out_alone and below_left_out_alone}


def test_the_faulted_answers_fail_and_no_other(failing):
    answers, questions = failing["answers"], failing["questions"]
    assert len(questions) == len(failing["syllabi"]) * SMOKE["questions"]["per_subject"]  # nothing upstream failed
    assert len(answers) == len(questions)
    kinds = {requests[0]["fault"] for requests in answers.values()}
    assert kinds == {None, *ITEM_FAULTS}
    instructions = rows(failing["out"], "instructions", ("train", "test"))
    assert len(instructions) == len(questions) - failing["failed"]
    answered = {requests[0]["content"] for requests in answers.values() if requests[0]["fault"] is None}
    assert {row["messages"][1]["content"] for row in instructions} == answered


def test_an_answer_cut_off_at_the_token_limit_is_asked_again_with_twice_the_tokens(failing):
    for requests in failing["answers"].values():
        asked = [record["max_tokens"] for record in requests]
        fault = requests[0]["fault"]
        if fault == "length":  # doubled once: the same limit would cut it again, a larger one might not
            assert asked == [ANSWER_MAX_TOKENS, 2 * ANSWER_MAX_TOKENS, 2 * ANSWER_MAX_TOKENS]
        elif fault == "form_feed":
            assert asked == [ANSWER_MAX_TOKENS] * 3
        else:
            assert asked == [ANSWER_MAX_TOKENS]
    truncated = sum(requests[0]["fault"] == "length" for requests in failing["answers"].values())
    stats = json.loads((failing["out"] / "stats.json").read_text())
    assert stats["quality"]["dropped"]["truncated"]["total"] == truncated > 0


def test_more_failures_than_the_threshold_exit_1_and_say_so(failing):
    failed, items = failing["failed"], failing["items"]
    assert 0.01 < failed / items < 0.5
    why = f"{failed:,} of {items:,} requests failed"
    for name in ("first", "below"):  # the default threshold is 1%
        code, _, err = failing[name]
        assert code == 1, name
        assert any(why in line and "--max-failure-rate" in line for line in err.splitlines()), err
    assert failing["left_out_alone"]
    code, _, err = failing["above"]
    assert code == 0 and why not in err
    assert rows(failing["out"], "questions") == failing["questions"]
    assert failing["replayed"] == 0  # the replays asked the endpoint for nothing
