"""The OpenAI-protocol test server, driven by the real `openai` client over real HTTP."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.helpers import PATIENCE_S, wait_until
from tests.servers import start_openai_server
from tests.servers.schema_fill import compile_schema


class Strict(BaseModel):
    """What OpenAI's strict mode accepts: no extra keys, every property required."""

    model_config = ConfigDict(extra="forbid")


class Session(Strict):
    title: str = Field(min_length=3)
    description: str = Field(min_length=60, max_length=200)
    key_concepts: list[str] = Field(min_length=3, max_length=6)


class Syllabus(Strict):
    subject: str
    level: Literal["introductory", "advanced"]
    hours: int = Field(ge=10, le=40)
    weight: float = Field(gt=0, lt=1)
    note: str | None
    sessions: list[Session] = Field(min_length=10, max_length=30)


MESSAGES = [{"role": "user", "content": "Write a syllabus."}]
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "Syllabus", "schema": Syllabus.model_json_schema(), "strict": True},
}


def chat(server, api_key: str = "test", **params) -> openai.types.chat.ChatCompletion:
    """One chat completion with the real async client; no retries so faults stay visible."""
    params = {"model": "test-model", "messages": MESSAGES, **params}

    async def call():
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=api_key, max_retries=0, timeout=PATIENCE_S
        ) as client:
            return await client.chat.completions.create(**params)

    return asyncio.run(call())


def test_json_schema_content_validates(openai_server):
    completion = chat(openai_server, response_format=JSON_SCHEMA, seed=1)
    syllabus = Syllabus.model_validate_json(completion.choices[0].message.content)
    assert 10 <= len(syllabus.sessions) <= 30
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "test-model"
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


def test_content_is_a_function_of_the_body(openai_server):
    def content(seed):
        return chat(openai_server, response_format=JSON_SCHEMA, seed=seed).choices[0].message.content

    assert content(1) == content(1)
    assert len({content(seed) for seed in range(2, 6)}) == 4


def test_labels_repeat_across_samples_and_sentences_do_not(openai_server):
    class Subject(BaseModel):
        name: str
        description: str

    class Subjects(BaseModel):
        subjects: list[Subject] = Field(min_length=20, max_length=20)

    fmt = {"type": "json_schema", "json_schema": {"name": "S", "schema": Subjects.model_json_schema()}}
    subjects = [
        subject
        for seed in range(10)
        for subject in Subjects.model_validate_json(
            chat(openai_server, response_format=fmt, seed=seed).choices[0].message.content
        ).subjects
    ]
    assert len({s.name for s in subjects}) < len(subjects)
    assert len({s.description for s in subjects}) == len(subjects)


def test_json_object_with_schema_llama_cpp_style(openai_server):
    fmt = {"type": "json_object", "schema": Syllabus.model_json_schema()}
    completion = chat(openai_server, response_format=fmt)
    Syllabus.model_validate_json(completion.choices[0].message.content)


def test_prompt_mode_reads_the_last_fenced_schema(openai_server):
    schema = json.dumps(Syllabus.model_json_schema())
    messages = [
        {"role": "system", "content": 'Example: ```json\n{"type": "integer"}\n```'},
        {"role": "user", "content": f"Answer with JSON for this schema:\n```json\n{schema}\n```"},
    ]
    completion = chat(openai_server, messages=messages)
    Syllabus.model_validate_json(completion.choices[0].message.content)


def test_no_schema_gives_plain_text(openai_server):
    content = chat(openai_server).choices[0].message.content
    assert content.endswith(".") and " " in content


def test_stats_and_log_count_every_request(openai_server):
    for seed in (7, 8, 7):
        chat(openai_server, seed=seed)
    assert openai_server.stats() == {"requests": 3, "responses": 3, "faults": {}}
    log = openai_server.log()
    assert [record["n"] for record in log] == [0, 1, 2]
    assert [record["seed"] for record in log] == [7, 8, 7]
    assert log[0]["body_sha256"] == log[2]["body_sha256"] != log[1]["body_sha256"]
    assert all(record["status"] == 200 and record["fault"] is None for record in log)
    assert all(record["responded"] >= record["received"] for record in log)
    openai_server.reset()
    assert openai_server.stats() == {"requests": 0, "responses": 0, "faults": {}}


def test_latency(openai_server):
    openai_server.configure(latency_ms=300)
    chat(openai_server)
    (record,) = openai_server.log()
    assert record["responded"] - record["received"] >= 0.3


def force(server, kind: str, **knobs) -> None:
    server.configure(fault_rate=1, faults={kind: 1}, **knobs)


def test_fault_429_carries_retry_after(openai_server):
    force(openai_server, "429", retry_after_s=7)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_server)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("kind", ["500", "503"])
def test_fault_server_errors(openai_server, kind):
    force(openai_server, kind)
    with pytest.raises(openai.InternalServerError) as caught:
        chat(openai_server)
    assert caught.value.status_code == int(kind)


def test_fault_reset_drops_the_connection(openai_server):
    force(openai_server, "reset")
    with pytest.raises(openai.APIConnectionError):
        chat(openai_server)
    (record,) = openai_server.log()
    assert record["fault"] == "reset" and record["status"] is None and record["responded"] is None


def test_fault_hang_outlasts_the_client_timeout(openai_server):
    force(openai_server, "hang", hang_s=3)
    with pytest.raises(openai.APITimeoutError):
        asyncio.run(_chat_with_timeout(openai_server, timeout=0.5))


async def _chat_with_timeout(server, timeout: float):
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=0) as client:
        return await client.chat.completions.create(model="test-model", messages=MESSAGES, timeout=timeout)


@pytest.mark.parametrize(
    ("kind", "finish_reason"),
    [("truncated", "stop"), ("invalid_json", "stop"), ("schema_invalid", "stop"), ("empty", "stop"),
     ("length", "length")],
)  # fmt: skip
def test_content_faults_answer_200_with_unusable_content(openai_server, kind, finish_reason):
    force(openai_server, kind)
    choice = chat(openai_server, response_format=JSON_SCHEMA).choices[0]
    assert choice.finish_reason == finish_reason
    with pytest.raises(ValueError):
        Syllabus.model_validate_json(choice.message.content)
    if kind == "schema_invalid":
        json.loads(choice.message.content)


QUESTION_PROMPT = [{"role": "system", "content": "You are a teacher. You write homework."},
                   {"role": "user", "content": "Write one question on entropy."}]
ANSWER_PROMPT = [{"role": "system", "content": "You are a tutor."}, {"role": "user", "content": "What is entropy?"}]


def test_free_text_gets_a_question_or_an_answer_by_the_prompt(openai_server):
    questions = {chat(openai_server, messages=QUESTION_PROMPT, seed=seed).choices[0].message.content
                 for seed in range(5)}
    answers = {chat(openai_server, messages=ANSWER_PROMPT, seed=seed).choices[0].message.content for seed in range(5)}
    assert len(questions) == len(answers) == 5
    assert all(text.startswith("How does ") and text.endswith("?") and text.count("?") == 1 for text in questions)
    assert all(2 <= text.count(". ") + 1 <= 4 and text.endswith(".") and "?" not in text for text in answers)
    assert [(record["output"], record["schema"], record["response_format"]) for record in openai_server.log()] == \
        [("question", None, None)] * 5 + [("answer", None, None)] * 5


def test_pools_serve_their_texts_in_turn_to_free_text_and_json_alike(openai_server):
    questions, answers = ["What is \\frac{a}{b}?", "Is 2 > 1?"], ["Yes.", "No.", "print(\"a\\nb\")"]
    openai_server.configure(question_pool=questions, answer_pool=answers)
    asked = [chat(openai_server, messages=QUESTION_PROMPT, seed=seed).choices[0].message.content for seed in range(3)]
    answered = [chat(openai_server, messages=ANSWER_PROMPT, seed=1).choices[0].message.content for _ in range(3)]
    assert (asked, answered) == (questions + questions[:1], answers)
    answer_schema = {"type": "json_schema", "json_schema": {"name": "A", "schema": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}}
    assert json.loads(chat(openai_server, response_format=answer_schema).choices[0].message.content) == \
        {"answer": answers[0]}


@pytest.mark.parametrize(("kind", "character"), [("form_feed", "\f"), ("nul", "\x00")])
def test_control_character_faults_put_the_character_first(openai_server, kind, character):
    force(openai_server, kind)
    free_text = chat(openai_server, messages=ANSWER_PROMPT).choices[0].message.content
    structured = json.loads(chat(openai_server, response_format=JSON_SCHEMA).choices[0].message.content)
    assert free_text[0] == character and free_text[1:2].isupper()
    first_string = next(value for value in structured.values() if isinstance(value, str))
    assert first_string[0] == character and first_string[1:].isalpha()


def test_json_faults_spare_free_text(openai_server):
    for kind in ("truncated", "invalid_json", "schema_invalid"):
        force(openai_server, kind)
        text = chat(openai_server, messages=ANSWER_PROMPT, seed=1).choices[0].message.content
        assert text.endswith(".") and text[0].isupper(), kind
    assert [record["fault"] for record in openai_server.log()] == [None] * 3
    assert openai_server.stats()["faults"] == {}


def test_faults_follow_arrival_so_a_retry_can_succeed(openai_server):
    openai_server.configure(fault_rate=0.5, faults={"500": 1}, fault_seed=3)
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(chat(openai_server, seed=1).choices[0].message.content)
        except openai.InternalServerError:
            outcomes.append(None)
    assert None in outcomes and len(set(outcomes) - {None}) == 1
    stats = openai_server.stats()
    assert stats["faults"] == {"500": outcomes.count(None)} and stats["requests"] == 20
    # The same seed and arrival order replay the same faults.
    openai_server.reset()
    for _ in range(20):
        try:
            chat(openai_server, seed=2)
        except openai.InternalServerError:
            pass
    replay = [record["fault"] is not None for record in openai_server.log()]
    assert replay == [outcome is None for outcome in outcomes]


def test_reject_json_schema_like_llama_cpp(openai_server):
    openai_server.configure(reject_json_schema=True)
    with pytest.raises(openai.BadRequestError) as caught:
        chat(openai_server, response_format=JSON_SCHEMA)
    assert caught.value.body["type"] == "invalid_request_error"
    fmt = {"type": "json_object", "schema": Syllabus.model_json_schema()}
    Syllabus.model_validate_json(chat(openai_server, response_format=fmt).choices[0].message.content)


def test_require_api_key(openai_server):
    openai_server.configure(require_api_key="sk-right")
    with pytest.raises(openai.AuthenticationError):
        chat(openai_server, api_key="sk-wrong")
    assert chat(openai_server, api_key="sk-right").choices[0].message.content
    assert [record["status"] for record in openai_server.log()] == [401, 200]


def test_models_and_cli_flags():
    with start_openai_server(models=["a", "b"], latency_ms=1, reject_json_schema=True) as server:
        async def models():
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="t") as client:
                return [model.id async for model in client.models.list()]

        assert asyncio.run(models()) == ["a", "b"]
        knobs = server.configure()
        assert knobs["latency_ms"] == 1 and knobs["reject_json_schema"] is True


def test_unknown_knob_is_refused(openai_server):
    with pytest.raises(Exception, match="400"):
        openai_server.configure(latency=5)


# -- strict like OpenAI ---------------------------------------------------------------------


@pytest.mark.parametrize(("model", "params", "status", "error", "message"), [
    ("gpt-nope", {}, 404, openai.NotFoundError, "The model `gpt-nope` does not exist"),
    ("secret-model", {}, 403, openai.PermissionDeniedError, "does not have access to model `secret-model`"),
    ("test-model", {"extra_body": {"max_tokenz": 5}}, 400, openai.BadRequestError,
     "Unrecognized request argument supplied: max_tokenz"),
    ("test-model", {"response_format": {"type": "xml"}}, 400, openai.BadRequestError, "Invalid value: 'xml'"),
], ids=["unknown model", "forbidden model", "unknown parameter", "unknown format"])
def test_requests_are_refused_as_openai_refuses_them(openai_server, model, params, status, error, message):
    openai_server.configure(models=["test-model", "secret-model"], forbidden_models=["secret-model"])
    with pytest.raises(error) as caught:
        chat(openai_server, model=model, **params)
    assert caught.value.status_code == status and message in caught.value.message
    if status != 400:
        assert caught.value.code == "model_not_found"
    (record,) = openai_server.log()
    assert (record["status"], record["model"]) == (status, model)


def strict_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "S", "schema": schema, "strict": True}}


@pytest.mark.parametrize(("schema", "problem"), [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
     "In context=(), 'additionalProperties' is required to be supplied and to be false."),
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a"],
      "additionalProperties": False},
     "In context=(), 'required' is required to be supplied and to be an array including every key in properties. "
     "Missing 'b'."),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"], "additionalProperties": False,
      "$defs": {"A": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": []}}},
     "In context=('$defs', 'A'), 'additionalProperties' is required to be supplied and to be false."),
    ({"type": "array", "items": {"type": "string"}},
     "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"array\"'."),
], ids=["additionalProperties", "required", "nested", "not an object"])
def test_strict_json_schema_rules_are_enforced(openai_server, schema, problem):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(openai_server, response_format=strict_format(schema))
    # The message as the server sent it: older openai 3.x releases put the whole body in the exception's message.
    assert caught.value.response.json()["error"]["message"] == f"Invalid schema for response_format 'S': {problem}"
    assert caught.value.body["param"] == "response_format"
    lenient = {"type": "json_schema", "json_schema": {"name": "S", "schema": schema}}  # strict off: no rules
    if schema["type"] == "object":
        assert chat(openai_server, response_format=lenient).choices[0].message.content


def test_the_log_records_what_each_request_asked_for(openai_server):
    completion = chat(openai_server, response_format=JSON_SCHEMA, max_tokens=77, seed=5)
    chat(openai_server, messages=[{"role": "user", "content": "Hello there"}])
    first, second = openai_server.log()
    assert (first["model"], first["max_tokens"], first["seed"], first["response_format"], first["schema"],
            first["output"]) == ("test-model", 77, 5, "json_schema", "Syllabus", "Syllabus")
    assert first["content"] == completion.choices[0].message.content
    assert first["prompt_tokens"] == completion.usage.prompt_tokens
    assert (second["response_format"], second["schema"], second["max_tokens"], second["output"]) == \
        (None, None, None, "answer")
    assert first["messages_sha256"] != second["messages_sha256"]


def test_a_message_of_several_parts_is_answered_and_the_prompt_cache_reads_the_text_messages(openai_server):
    """A message whose content is a list of parts (OpenAI's multi-part form) is answered, not a 500; the prompt
    cache holds the messages whose content is text."""
    openai_server.configure(prompt_cache_min_tokens=0, prompt_cache_block_tokens=1)
    messages = [{"role": "system", "content": "You write syllabi."},  # 18 characters: 4 blocks of 4
                {"role": "user", "content": [{"type": "text", "text": "Write a syllabus."}]}]
    first, again = (chat(openai_server, messages=messages) for _ in range(2))
    assert first.choices[0].message.content and again.choices[0].message.content
    assert (first.usage.prompt_tokens_details.cached_tokens, again.usage.prompt_tokens_details.cached_tokens) == (0, 4)
    assert [record["status"] for record in openai_server.log()] == [200, 200]


def test_retry_after_in_milliseconds_and_as_an_http_date(openai_server):
    import email.utils
    import time

    force(openai_server, "429", retry_after_s=2.5, retry_after_form="ms")
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_server)
    assert caught.value.response.headers["retry-after-ms"] == "2500"
    assert "retry-after" not in caught.value.response.headers
    openai_server.configure(retry_after_form="date")
    asked = time.time()
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_server)
    answered = time.time()
    until = email.utils.parsedate_to_datetime(caught.value.response.headers["retry-after"]).timestamp()
    assert asked + 2.5 <= until <= answered + 3.5  # rounded up to a whole second


def test_fault_502_is_an_html_page_like_a_proxys(openai_server):
    force(openai_server, "502")
    with pytest.raises(openai.InternalServerError) as caught:
        chat(openai_server)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in caught.value.response.text


def test_faults_at_fixed_arrivals(openai_server):
    openai_server.configure(faults_at={"1": "500"})
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(chat(openai_server).choices[0].finish_reason)
        except openai.InternalServerError:
            outcomes.append("500")
    assert outcomes == ["stop", "500", "stop"]


def test_item_faults_hit_every_attempt_at_the_same_messages(openai_server):
    openai_server.configure(item_faults={"schema_invalid": 0.5}, item_fault_output="Syllabus")
    prompts = [[{"role": "user", "content": f"Write syllabus {index}."}] for index in range(12)]
    spoiled = []
    for messages in prompts:
        contents = {chat(openai_server, messages=messages, response_format=JSON_SCHEMA, seed=seed)
                    .choices[0].message.content for seed in (1, 2)}
        spoiled.append(contents == {"[]"})
        assert contents == {"[]"} or "[]" not in contents  # both attempts alike
    assert 0 < sum(spoiled) < len(prompts)
    assert chat(openai_server, messages=prompts[spoiled.index(True)]).choices[0].message.content != "[]"  # other schema


def test_question_pool_supplies_every_question(openai_server):
    class Question(Strict):
        question: str

    pool = ["What is entropy?", "Why is the sky blue?"]
    openai_server.configure(question_pool=pool)
    fmt = {"type": "json_schema", "json_schema": {"name": "Q", "schema": Question.model_json_schema()}}
    asked = {Question.model_validate_json(chat(openai_server, response_format=fmt, seed=seed)
                                          .choices[0].message.content).question for seed in range(12)}
    assert asked == set(pool)


def test_hold_keeps_answers_until_lifted(openai_server):
    import threading

    openai_server.configure(hold=True)
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(chat(openai_server)), daemon=True)
    waiting.start()
    [held] = wait_until(openai_server.log, "the request to reach the server")
    assert held["status"] is None and not answers
    openai_server.configure(hold=False)
    wait_until(lambda: answers, "the answer once the hold was lifted")
    assert openai_server.log()[0]["status"] == 200


# -- Files + Batch API ----------------------------------------------------------------------


def batch_lines(count: int) -> list[dict]:
    return [
        {"custom_id": f"req-{index}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "test-model", "messages": MESSAGES, "seed": index,
                  "response_format": JSON_SCHEMA}}
        for index in range(count)
    ]  # fmt: skip


def run_batch(server, lines: list[dict], cancel: bool = False) -> tuple[openai.types.Batch, dict, dict]:
    """Upload, create (and cancel), poll to the end; returns the batch and its output and error lines by custom_id."""
    with openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0) as client:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
        assert client.files.retrieve(uploaded.id).bytes == len(data)
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        assert batch.status == "validating"
        if cancel:
            assert client.batches.cancel(batch.id).status == "cancelling"
            server.configure(batch_delay_s=0.1)  # the test held the batch so that the cancel lands while it runs
        batch = wait_until(lambda: _finished(client.batches.retrieve(batch.id)), f"batch {batch.id} to end")
        files = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            text = client.files.content(file_id).text if file_id else ""
            files[file_id] = {row["custom_id"]: row for row in map(json.loads, text.splitlines())}
    return batch, files.get(batch.output_file_id, {}), files.get(batch.error_file_id, {})


def _finished(batch: openai.types.Batch) -> openai.types.Batch | None:
    return batch if batch.status in ("completed", "failed", "expired", "cancelled") else None


def test_batch_answers_like_the_online_endpoint(openai_server):
    openai_server.configure(batch_delay_s=0.2)
    lines = batch_lines(5)
    batch, outputs, errors = run_batch(openai_server, lines)
    assert batch.status == "completed" and batch.completed_at and batch.in_progress_at
    assert batch.request_counts.model_dump() == {"total": 5, "completed": 5, "failed": 0}
    assert batch.error_file_id is None and errors == {}
    for line in lines:
        result = outputs[line["custom_id"]]
        assert result["error"] is None and result["response"]["status_code"] == 200
        online = chat(openai_server, seed=line["body"]["seed"], response_format=JSON_SCHEMA)
        batch_content = result["response"]["body"]["choices"][0]["message"]["content"]
        assert batch_content == online.choices[0].message.content
    assert openai_server.stats()["requests"] == 5  # batch lines are not online requests


def test_batch_error_rate_fills_the_error_file(openai_server):
    openai_server.configure(batch_delay_s=0.1, batch_error_rate=1)
    batch, outputs, errors = run_batch(openai_server, batch_lines(3))
    assert batch.status == "completed" and batch.output_file_id is None and outputs == {}
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 0, "failed": 3}
    assert {e["response"]["status_code"] for e in errors.values()} == {500}


def test_batch_expire_leaves_the_second_half_unfinished(openai_server):
    openai_server.configure(batch_delay_s=0.1, batch_expire=True)
    batch, outputs, errors = run_batch(openai_server, batch_lines(4))
    assert batch.status == "expired" and batch.expired_at
    assert sorted(outputs) == ["req-0", "req-1"] and sorted(errors) == ["req-2", "req-3"]
    assert all(e["response"] is None and e["error"]["code"] == "batch_expired" for e in errors.values())
    openai_server.configure(batch_expire=[0])
    batch, outputs, errors = run_batch(openai_server, batch_lines(2))
    assert batch.status == "expired" and list(outputs) == ["req-1"] and list(errors) == ["req-0"]


def test_batch_cancel(openai_server):
    openai_server.configure(batch_delay_s=2 * PATIENCE_S)
    batch, outputs, errors = run_batch(openai_server, batch_lines(2), cancel=True)
    assert batch.status == "cancelled" and batch.cancelled_at and outputs == {}
    assert {e["error"]["code"] for e in errors.values()} == {"batch_cancelled"}


def test_batch_with_a_bad_line_fails(openai_server):
    openai_server.configure(batch_delay_s=0.1)
    batch, _, _ = run_batch(openai_server, [{"custom_id": "x", "url": "/v1/embeddings", "body": {}}])
    assert batch.status == "failed" and batch.errors.data[0].message


def test_batches_list_newest_first(openai_server):
    openai_server.configure(batch_delay_s=0.05)
    first, _, _ = run_batch(openai_server, batch_lines(1))
    second, _, _ = run_batch(openai_server, batch_lines(1))

    async def listed():
        async with openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="t") as client:
            return [batch.id async for batch in client.batches.list(limit=1)]

    assert asyncio.run(listed()) == [second.id, first.id]


def test_generated_values_always_validate():
    class Bounds(BaseModel):
        tag: Literal["only"]
        short: str = Field(min_length=5, max_length=6)
        tiny: str = Field(max_length=0)
        ratio: float = Field(ge=0.333, le=0.334)
        count: int = Field(gt=-3, lt=-1)
        flags: list[bool] = Field(max_length=2)
        nested: list[list[Session]] = Field(min_length=1, max_length=2)
        mapping: dict[str, int]

    for model in (Syllabus, Bounds):
        generate = compile_schema(model.model_json_schema())
        for seed in range(300):
            model.model_validate_json(json.dumps(generate(random.Random(seed))))


@pytest.mark.parametrize(("lines", "code", "message"), [
    (batch_lines(2) + batch_lines(1), "duplicate_custom_id", "The custom_id 'req-0' is used by more than one request."),
    (batch_lines(1) + [{**batch_lines(2)[1], "body": {**batch_lines(2)[1]["body"], "model": "other-model"}}],
     "mismatched_model", "A batch input file may use only one model; this line uses 'other-model'."),
    (batch_lines(4), "too_many_requests", "The input file holds 4 requests; a batch may hold at most 3."),
    ([{**batch_lines(1)[0], "method": "GET"}], "invalid_request", "Each line needs a string custom_id, method 'POST'"),
], ids=["duplicate custom_id", "two models", "too many requests", "not a POST"])
def test_a_batch_the_api_would_refuse_fails_with_its_reason(openai_server, lines, code, message):
    openai_server.configure(batch_delay_s=0.05, batch_max_requests=3)
    batch, outputs, errors = run_batch(openai_server, lines)
    assert batch.status == "failed" and outputs == {} and errors == {}
    assert batch.errors.data[0].code == code and batch.errors.data[0].message.startswith(message)


def test_batch_files_are_checked_on_upload_and_creation(openai_server):
    openai_server.configure(batch_max_bytes=100)
    data = "".join(json.dumps(line) + "\n" for line in batch_lines(1)).encode()

    async def go():
        async with openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="t", max_retries=0) as client:
            with pytest.raises(openai.BadRequestError, match="a batch input file may hold at most 100 bytes"):
                await client.files.create(file=("big.jsonl", data), purpose="batch")
            with pytest.raises(openai.BadRequestError, match="'bogus' is not one of"):
                await client.files.create(file=("x.jsonl", data), purpose="bogus")
            other = await client.files.create(file=("x.jsonl", data), purpose="user_data")
            with pytest.raises(openai.BadRequestError, match="must be uploaded with purpose 'batch', not 'user_data'"):
                await client.batches.create(input_file_id=other.id, endpoint="/v1/chat/completions",
                                            completion_window="24h")

    asyncio.run(go())


def test_batch_lines_are_refused_like_online_requests(openai_server):
    openai_server.configure(batch_delay_s=0.05)
    lines = batch_lines(2)
    lines[1]["body"]["temperatur"] = 0.5
    batch, outputs, errors = run_batch(openai_server, lines)
    assert batch.status == "completed" and list(outputs) == ["req-0"]
    refused = errors["req-1"]["response"]
    assert refused["status_code"] == 400
    assert refused["body"]["error"]["message"] == "Unrecognized request argument supplied: temperatur"
