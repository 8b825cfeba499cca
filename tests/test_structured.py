"""Structured output: a failed validation names the field and the rule; json_schema mode sends the
length bounds the reply is validated against, so an endpoint that enforces them is not paid three times."""

import asyncio
import json
import urllib.request

from builder.llm.accounting import Accounting
from builder.llm.cache import Cache
from builder.llm.attempts import LLMRequest
from builder.llm.engine import Endpoint, Engine, Limits, Route
from builder.llm.structured import parse_output
from builder.schemas import question_model, subject_list_model

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
