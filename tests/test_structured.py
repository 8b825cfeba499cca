"""Structured output: a failed validation names the field and the rule; json_schema mode sends the
length bounds the reply is validated against, so an endpoint that enforces them is not paid three times.
Free text: a question loses only the wrappers a model puts around it, an answer only surrounding
whitespace; a control character fails every kind of reply."""

import asyncio
import json
import unicodedata
import urllib.request

import pytest

from glan.llm.accounting import Accounting
from glan.llm.cache import Cache
from glan.llm.attempts import LLMRequest
from glan.config.settings import Limits
from glan.llm.engine import Engine
from glan.llm.routes import Endpoint, Route
from glan.llm.free_text import FreeText, control_character
from glan.llm.structured import parse_output
from glan.schemas import answer_model, question_model, subject_list_model

SUBJECTS = subject_list_model(["introductory", "advanced"], 1, 3)


def test_schema_invalid_names_the_field_and_the_rule_that_failed():
    short_name = '{"subjects": [{"name": "AI", "level": "advanced", "subtopics": ["search"]}]}'
    unknown_level = '{"subjects": [{"name": "Logic", "level": "expert", "subtopics": ["proofs"]}]}'
    assert parse_output(short_name, SUBJECTS) == (
        None, "schema_invalid: subjects[0].name: String should have at least 3 characters")
    assert parse_output(unknown_level, SUBJECTS) == (
        None, "schema_invalid: subjects[0].level: Input should be 'introductory' or 'advanced'")
    assert parse_output("[]", SUBJECTS) == (
        None, "schema_invalid: the reply: Input should be a valid dictionary or instance of SubjectList")


MESSAGES = [{"role": "system", "content": "You write homework."}, {"role": "user", "content": "One question."}]


def test_json_schema_mode_sends_the_length_bounds_and_the_first_answer_passes(openai_server, tmp_path):
    bounded = question_model(24)  # 20 to 24 characters
    route = Route("test-model", (Endpoint(openai_server.base_url, mode="json_schema"),))
    cache = Cache(tmp_path / "cache.sqlite")

    async def ask():
        async with Engine(cache, Limits(), Accounting({})) as engine:
            return await engine.map("questions", route, [LLMRequest("q", MESSAGES, {"max_tokens": 64}, bounded)], cache)

    (result,) = asyncio.run(ask())
    assert result.ok and result.attempts == 1
    assert 20 <= len(result.value.question) <= 24
    assert openai_server.stats()["requests"] == 1

    # Without the bounds the server's answer breaks them: sending them is what made the first answer pass.
    schema = bounded.model_json_schema()
    del schema["properties"]["question"]["minLength"], schema["properties"]["question"]["maxLength"]
    body = {"model": "test-model", "messages": MESSAGES, "max_tokens": 64, "response_format": {
        "type": "json_schema", "json_schema": {"name": "HomeworkQuestion", "schema": schema, "strict": True}}}
    request = urllib.request.Request(f"{openai_server.base_url}/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        unbounded = json.loads(json.load(response)["choices"][0]["message"]["content"])["question"]
    assert not 20 <= len(unbounded) <= 24


# -- control characters and free text ------------------------------------------------------------

QUESTION = FreeText(question_model(200), label="Question")
ANSWER = FreeText(answer_model(None))
# Every control character glan refuses: Unicode's category Cc without tab and newline.
REFUSED = [chr(code) for code in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]]


def test_the_refused_characters_are_the_control_characters_but_tab_and_newline():
    assert [chr(code) for code in range(0x110000)
            if unicodedata.category(chr(code)) == "Cc" and chr(code) not in "\t\n"] == REFUSED
    assert control_character("a\tb\nc \u2028 \u200d \u00a0 é") is None  # separators and format characters pass


@pytest.mark.parametrize("character", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_a_control_character_fails_every_kind_of_output(character):
    code = f"U+{ord(character):04X}"
    text = f"What is the {character}derivative of x squared?"
    assert parse_output(text, QUESTION) == (None, f"control_character: {code}")
    assert parse_output(text, ANSWER) == (None, f"control_character: {code}")
    subjects = json.dumps({"subjects": [{"name": "Logic", "level": "advanced", "subtopics": ["ok", f"a{character}b"]}]})
    assert parse_output(subjects, SUBJECTS) == (None, f"control_character: subjects[0].subtopics[1]: {code}")


def test_single_backslash_latex_inside_json_fails_instead_of_turning_into_control_characters():
    """What a model writes when it puts LaTeX in a JSON string: JSON reads \\f, \\b, \\r as control characters."""
    for latex, code in ((r"\frac{a}{b}", "U+000C"), (r"\beta", "U+0008"), (r"\rho", "U+000D"), (r"\right)", "U+000D")):
        reply = '{"subjects": [{"name": "Calculus", "level": "advanced", "subtopics": ["' + latex + '"]}]}'
        assert parse_output(reply, SUBJECTS) == (None, f"control_character: subjects[0].subtopics[0]: {code}")
    escaped = '{"subjects": [{"name": "Calculus", "level": "advanced", "subtopics": ["\\\\frac{a}{b}"]}]}'
    assert parse_output(escaped, SUBJECTS)[0].subjects[0].subtopics == [r"\frac{a}{b}"]


@pytest.mark.parametrize(("reply", "question"), [
    ("Why is the sky blue on a clear day?", "Why is the sky blue on a clear day?"),
    ("  \n Why is the sky blue on a clear day?\n\n", "Why is the sky blue on a clear day?"),
    ("Question: Why is the sky blue on a clear day?", "Why is the sky blue on a clear day?"),
    ("**Question:** Why is the sky blue on a clear day?", "Why is the sky blue on a clear day?"),
    ("**Question**: Why is the sky blue on a clear day?", "Why is the sky blue on a clear day?"),
    ("QUESTION:\nWhy is the sky blue on a clear day?", "Why is the sky blue on a clear day?"),
    ('"Why is the sky blue on a clear day?"', "Why is the sky blue on a clear day?"),
    ("\u201cWhy is the sky blue on a clear day?\u201d", "Why is the sky blue on a clear day?"),
    ('Question: "Why is the sky blue on a clear day?"', "Why is the sky blue on a clear day?"),
    ("```\nWhy is the sky blue on a clear day?\n```", "Why is the sky blue on a clear day?"),
    ("```text\nQuestion: Why is the sky blue on a clear day?\n```", "Why is the sky blue on a clear day?"),
    # Not a wrapper: kept as written.
    ('"Hello" and "world": which string is longer?', '"Hello" and "world": which string is longer?'),
    ('"Is "x" a variable of this program?"', '"Is "x" a variable of this program?"'),
    ('What does this print?\n```python\nprint("a\\nb")\n```', 'What does this print?\n```python\nprint("a\\nb")\n```'),
    ("```python\nx = 1\n```\nWhat is x after\n```python\nx += 1\n```", "```python\nx = 1\n```\nWhat is x after\n"
                                                                      "```python\nx += 1\n```"),
    ("Questions: what are they good for, and why?", "Questions: what are they good for, and why?"),
], ids=lambda value: repr(value)[:40])
def test_a_question_loses_only_what_a_model_wraps_it_in(reply, question):
    value, reason = parse_output(reply, QUESTION)
    assert reason is None and value.question == question


def test_an_answer_is_the_reply_as_written_but_for_surrounding_whitespace():
    reply = '\n  "Question: yes," she said.\n```\ncode\n```\n| a | b |\n|---|---|\n\\frac{1}{2} \u00e9 \t\n\n'
    assert parse_output(reply, ANSWER)[0].answer == reply.strip()


def test_a_free_text_reply_is_checked_against_the_bounds_of_the_settings():
    assert parse_output("Why?", QUESTION) == (None, "text_invalid: question: String should have at least 20 characters")
    assert parse_output("W" * 201 + "?", QUESTION) == (
        None, "text_invalid: question: String should have at most 200 characters")
    assert parse_output('Question: ""', QUESTION) == (None, "empty")
    assert parse_output(" \n\t", ANSWER) == (None, "empty")
    assert parse_output("x" * 5, FreeText(answer_model(4))) == (
        None, "text_invalid: answer: String should have at most 4 characters")


@pytest.mark.parametrize(("fault", "code"), [("form_feed", "U+000C"), ("nul", "U+0000")])
def test_a_structured_reply_holding_a_control_character_is_asked_again(openai_server, tmp_path, fault, code):
    openai_server.configure(faults_at={"0": fault})
    route = Route("test-model", (Endpoint(openai_server.base_url, mode="json_schema"),))
    cache = Cache(tmp_path / "cache.sqlite")

    async def ask():
        async with Engine(cache, Limits(), Accounting({})) as engine:
            return await engine.map("subjects", route, [LLMRequest("s", MESSAGES, {}, SUBJECTS)], cache)

    (result,) = asyncio.run(ask())
    first, second = openai_server.log()
    assert parse_output(first["content"], SUBJECTS)[1].startswith("control_character: subjects[0].")
    assert parse_output(first["content"], SUBJECTS)[1].endswith(code)
    assert result.ok and result.attempts == 2
    assert result.value == parse_output(second["content"], SUBJECTS)[0]
