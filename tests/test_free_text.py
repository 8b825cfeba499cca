"""Questions and answers as free text, through `glan build` against the test server: the rows hold exactly
the text the server sent (LaTeX, code, markdown tables, non-ASCII), no free-text request carries a
response_format or a schema (online in every structured-output mode, and in Batch API files), and a reply
holding a control character is asked again and counted as a failure, in structured and free-text stages."""

import json
from collections import defaultdict

import pytest
from openai import OpenAI

from glan.config.settings import Limits
from glan.llm.engine import Engine
from glan.llm.accounting import Accounting
from glan.llm.attempts import LLMRequest
from glan.llm.cache import Cache
from glan.llm.free_text import CONTROL_CHARACTER
from glan.llm.routes import Endpoint
from glan.llm.structured import MODES
from glan.stages import OUTPUTS
from glan.taxonomy import load_taxonomy
from tests.helpers import REPO, SMOKE, glan, project, rows
from tests.servers import start_openai_server
from tests.servers.openai_server import output_of

DISCIPLINE = "Organic Chemistry"
# Each case: a question and an answer as a model writes them, with the escape JSON would have corrupted.
CASES = {
    r"\frac": (r"Simplify \frac{a}{b} + \frac{c}{d} when b and d share no common factor?",
               r"Over a common denominator: \frac{a}{b} + \frac{c}{d} = \frac{ad + bc}{bd}."),
    r"\(x\)": (r"For which real numbers \(x\) does \(x^2 - 5x + 6 = 0\) hold?",
               r"Factor it: \((x - 2)(x - 3) = 0\), so \(x = 2\) or \(x = 3\)."),
    r"\theta": (r"How does the angle \theta of a pendulum change as it swings through its lowest point?",
                r"At the lowest point \theta = 0 and the speed is largest: v = \sqrt{2gL(1 - \cos\theta_0)}."),
    r"\times": (r"Why is 3 \times 4 equal to 4 \times 3 for every pair of whole numbers?",
                r"Multiplication commutes: a \times b counts the same grid as b \times a, turned a quarter."),
    r"\beta": (r"What does the coefficient \beta measure in the regression y = \alpha + \beta x + \varepsilon?",
               r"\beta is the slope: \hat\beta = \frac{\sum_i (x_i - \bar x)(y_i - \bar y)}{\sum_i (x_i - \bar x)^2}."),
    r"\rho": (r"How is the density \rho of an ideal gas related to its pressure p and its temperature T?",
              r"From pV = nRT and \rho = nM/V it follows that \rho = \frac{pM}{RT}."),
    r"\right": (r"Evaluate \left( \frac{1}{2} \right)^{3} and explain each step of the computation?",
                r"\left( \frac{1}{2} \right)^{3} = \frac{1^3}{2^3} = \frac{1}{8}."),
    r"\nabla": (r"What does \nabla \cdot \mathbf{E} describe in Maxwell's equations of electromagnetism?",
                r"Gauss's law: \nabla \cdot \mathbf{E} = \frac{\rho}{\varepsilon_0}, charge over permittivity."),
    "code": ('What does print("a\\nb") print in Python 3, and why does it span two lines?',
             'Two lines, "a" then "b":\n\n```python\n>>> print("a\\nb")\na\nb\n```\n\n"\\n" is the newline escape; '
             "print(r\"a\\nb\") or print('a\\\\nb') prints it as written."),
    "table": ("Which row of this table of squares is wrong?\n\n| x | x^2 |\n|---|---|\n| 2 | 4 |\n| 3 | 8 |",
              "The second row: 3^2 = 9, not 8.\n\n| x | x^2 |\n|---|---|\n| 2 | 4 |\n| 3 | 9 |"),
    "non-ASCII": ("Warum beträgt die Winkelsumme im Dreieck 180°, und gilt das auch auf einer Kugel? "
                  "三角形の内角の和は？",
                  "In der Ebene ja: α + β + γ = 180°. Auf einer Kugel ist sie größer (> 180°), z. B. 270° "
                  "für ein Achtel der Kugeloberfläche. 😀"),
    "quotes": ('Which is right in "the dog wagged ___ tail": "its" or "it\'s"?',
               '"Its." The possessive takes no apostrophe: "it\'s" means "it is".'),
    "answer in quotes": ('Which line opens the novel "A Tale of Two Cities" by Charles Dickens?',
                         '"It was the best of times, it was the worst of times."'),
}
QUESTIONS, ANSWERS = ([case[index] for case in CASES.values()] for index in (0, 1))


@pytest.fixture(scope="module")
def escapes(tmp_path_factory):
    """One build whose every question and answer comes from CASES: the pools are served in turn, and 14
    questions per subject (of at least 2 subjects) are more than the pool holds, so each question is asked (its
    repeats dropped as exact duplicates), and the questions left get one answer each."""
    tmp = tmp_path_factory.mktemp("escapes")
    taxonomy = project(tmp / "project", escapes={"questions": {**SMOKE["questions"], "per_subject": 14}})
    with start_openai_server(question_pool=QUESTIONS, answer_pool=ANSWERS) as server:
        code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "escapes", "--disciplines", DISCIPLINE,
                            "--model", "test-model", "--base-url", server.base_url, "--out", tmp / "dist",
                            "--work-dir", tmp / ".glan")
        log = server.log()
    assert code == 0, err
    return {"log": log, "questions": rows(tmp / "dist", "questions"),
            "instructions": rows(tmp / "dist", "instructions", ("train", "test"))}


def test_the_rows_hold_exactly_the_texts_the_server_sent(escapes):
    sent = defaultdict(set)
    for record in escapes["log"]:
        sent[record["output"]].add(record["content"])
    assert sent["question"] == set(QUESTIONS) and sent["answer"] == set(ANSWERS)
    assert sorted(row["question"] for row in escapes["questions"]) == sorted(QUESTIONS)
    instructions = escapes["instructions"]
    assert sorted(row["messages"][0]["content"] for row in instructions) == sorted(QUESTIONS)
    assert sorted(row["messages"][1]["content"] for row in instructions) == sorted(ANSWERS)


@pytest.mark.parametrize("case", CASES)
def test_each_escape_reaches_the_rows_byte_for_byte(escapes, case):
    question, answer = CASES[case]
    (row,) = [row for row in escapes["questions"] if row["question"] == question]
    assert row["question"].encode() == question.encode()
    (pair,) = [row for row in escapes["instructions"] if row["messages"][0]["content"] == question]
    assert pair["messages"][0]["content"].encode() == question.encode()
    assert [row["messages"][1]["content"].encode() for row in escapes["instructions"]].count(answer.encode()) == 1
    texts = [row["question"] for row in escapes["questions"]] + [text for row in escapes["instructions"]
                                                                  for text in (m["content"] for m in row["messages"])]
    assert not any(CONTROL_CHARACTER.search(text) for text in texts)


ENDPOINTS = {  # how the endpoint takes structured output -> the response_format glan ends up sending it
    "json_schema": ({}, "json_schema"),
    "json_object": ({"reject_json_schema": True}, "json_object"),
    "prompt": ({"reject_json_schema": True, "reject_json_object": True}, None),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_questions_and_answers_carry_no_response_format_and_no_schema(tmp_path, endpoint):
    knobs, structured_format = ENDPOINTS[endpoint]
    with start_openai_server(**knobs) as server:
        code, _, err = glan("build", "--preset", "smoke", "--disciplines", DISCIPLINE, "--model", "test-model",
                            "--base-url", server.base_url, "--out", tmp_path / "dist", "--work-dir", tmp_path / ".glan")
        log = server.log()
    assert code == 0, err
    answered = {(record["output"], record["response_format"], record["schema"]) for record in log
                if record["status"] == 200}
    assert answered == {("SubjectList", structured_format, "SubjectList"), ("Syllabus", structured_format, "Syllabus"),
                        ("question", None, None), ("answer", None, None)}
    assert len(rows(tmp_path / "dist", "instructions", ("train", "test"))) == \
        sum(record["output"] == "answer" for record in log)


LOCAL = Endpoint("http://127.0.0.1:1/v1")


def test_a_free_text_body_is_the_prompt_as_rendered_in_every_mode(tmp_path):
    settings = load_taxonomy(REPO / "taxonomy.yaml").settings("smoke")
    messages = [{"role": "system", "content": "You write homework."}, {"role": "user", "content": "One question."}]
    engine = Engine(Cache(tmp_path / "cache.sqlite"), Limits(), Accounting({}))
    for name in ("QuestionText", "AnswerText"):
        request = LLMRequest("q", messages, {"temperature": 1.0}, OUTPUTS[name].model(settings))
        for mode in MODES:
            body = engine.request_body("test-model", request, request.params, "ab" * 32, LOCAL, mode)
            assert body == {"model": "test-model", "temperature": 1.0, "seed": int("abababab", 16) % 2**31,
                            "messages": messages}, (name, mode)


def test_batch_lines_of_questions_and_answers_carry_no_response_format(tmp_path):
    with start_openai_server(batch_delay_s=0.2) as server:
        code, _, err = glan("build", "--preset", "smoke", "--disciplines", DISCIPLINE, "--model", "test-model",
                            "--base-url", server.base_url, "--batch", "--out", tmp_path / "dist",
                            "--work-dir", tmp_path / ".glan")
        api = OpenAI(base_url=server.base_url, api_key="test")
        bodies = [json.loads(line)["body"] for batch in api.batches.list(limit=100)
                  for line in api.files.content(batch.input_file_id).text.splitlines()]
    assert code == 0, err
    formats = {(output_of(body), (body.get("response_format") or {}).get("type")) for body in bodies}
    assert formats == {("SubjectList", "json_schema"), ("Syllabus", "json_schema"), ("question", None),
                       ("answer", None)}


@pytest.mark.parametrize(("output", "fault", "stage", "code"), [
    ("Syllabus", "form_feed", "syllabus", "U+000C"),
    ("Syllabus", "nul", "syllabus", "U+0000"),
    ("question", "form_feed", "questions", "U+000C"),
    ("answer", "nul", "answers", "U+0000"),
])
def test_a_reply_holding_a_control_character_is_asked_again_then_counted_as_failed(tmp_path, output, fault, stage,
                                                                                   code):
    """The server puts the character into every reply to half of the items of one output (in JSON as the escape
    a single-backslash `\\frac` becomes): each such item is asked 3 times, then fails with reason
    control_character, and is counted like any failure; no row holds the character."""
    with start_openai_server(item_faults={fault: 0.5}, item_fault_output=output) as server:
        code_, _, err = glan("build", "--preset", "smoke", "--disciplines", DISCIPLINE, "--model", "test-model",
                             "--base-url", server.base_url, "--out", tmp_path / "dist", "--work-dir", tmp_path / ".glan",
                             "--max-failure-rate", "1")
        log = server.log()
    assert code_ == 0, err
    faults = defaultdict(set)  # an item's messages -> the faults its requests got (samples of one prompt share it)
    for record in log:
        if record["output"] == output:
            faults[record["messages_sha256"]].add(record["fault"])
    assert set(map(frozenset, faults.values())) == {frozenset({None}), frozenset({fault})}
    spoiled = sum(record["output"] == output and record["fault"] == fault for record in log)
    clean = sum(record["output"] == output and record["fault"] is None for record in log)
    assert spoiled % 3 == 0  # every attempt at a spoiled item
    failures = [json.loads(line) for path in (tmp_path / ".glan" / "units").glob("*/*/failures.jsonl")
                for line in path.read_text().splitlines()]
    assert len(failures) == spoiled // 3
    assert all(failure["stage"] == stage and failure["attempts"] == 3 and
               failure["reason"].startswith("control_character: ") and failure["reason"].endswith(code)
               for failure in failures)
    report = json.loads((tmp_path / ".glan" / "run_report.json").read_text())
    (usage,) = [usage for usage in report["usage"] if usage["stage"] == stage]
    assert (usage["failed"], usage["succeeded"]) == (spoiled // 3, clean)
    for config in ("subjects", "syllabi", "questions", "instructions"):
        splits = ("train", "test") if config == "instructions" else ("train",)
        assert not any(CONTROL_CHARACTER.search(text) for row in rows(tmp_path / "dist", config, splits)
                       for text in strings(row))


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
