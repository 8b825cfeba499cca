"""What an endpoint sees of `glan build`: Retry-After waited in every form, request and token rates held,
refusals (403, 404) stopping the run, transport retries running out, OPENAI_BASE_URL and a stage's own
key variable, and the structured-output mode stepping down to what the endpoint takes.

Everything is observed at the test server (its request log: arrival times, models, formats, statuses)
or as the user sees it (exit code, stderr, rows read back with load_dataset).
"""

from collections import Counter

import pytest

from tests.helpers import SMOKE, glan, project, rows
from tests.servers import start_openai_server

TWO = "Organic Chemistry,Linear Algebra"
# Server clocks and client sleeps agree to well within this (both are the machine's monotonic clock).
CLOCK_SLACK_S = 0.05
# How much later than its limiter let it go a request may reach the server's log: a fresh connection, a
# busy machine. Arrivals bunch up by at most this much.
TRANSIT_SLACK_S = 0.5


def build_args(server, tmp_path, *flags):
    return ["build", "--model", "test-model", "--base-url", server.base_url, "--out", tmp_path / "dist",
            "--work-dir", tmp_path / ".glan", *flags]


@pytest.mark.parametrize("form", ["seconds", "ms", "date"])
def test_retry_after_is_waited_before_anything_else_is_sent_to_that_endpoint(tmp_path, form):
    """Two requests go out at once; the second to arrive gets a 429 at once, the first is answered after
    300 ms. Nothing may reach the endpoint until Retry-After has passed: not the retry, not the requests
    that were waiting for a slot."""
    wait_s = 1.0
    with start_openai_server(latency_ms=300, faults_at={"1": "429"}, retry_after_s=wait_s,
                             retry_after_form=form) as server:
        code, _, err = glan(*build_args(server, tmp_path, "--preset", "smoke", "--disciplines", TWO,
                                        "--configs", "subjects", "--concurrency", "2"))
        log = server.log()
    assert code == 0, err
    limited = log[1]
    assert limited["status"] == 429
    later = [record for record in log if record["received"] > limited["responded"]]
    assert len(later) >= 2  # the retry and a request that waited for its turn
    assert min(record["received"] for record in later) >= limited["responded"] + wait_s - CLOCK_SLACK_S
    assert [record["status"] for record in log if record["body_sha256"] == limited["body_sha256"]] == [429, 200]


def within_bucket(times: list[float], amounts: list[float], per_minute: float, slack: float) -> bool:
    """True when no window of arrivals holds more than glan's limit allows: a 10-second burst, then the rate
    (`slack` per request covers how the client and the server count a prompt's tokens)."""
    rate, burst = per_minute / 60, per_minute / 6
    for first in range(len(times)):
        total = 0.0
        for last in range(first, len(times)):
            total += amounts[last]
            allowed = burst + rate * (times[last] - times[first] + TRANSIT_SLACK_S) + slack * (last - first + 1)
            if total > allowed:
                return False
    return True


def test_requests_and_tokens_per_minute_hold_at_the_endpoint_across_stages(tmp_path):
    """Limits set so that the last 15% of the build's requests (then of its tokens) must wait: the arrivals
    stay inside the limit's envelope over the whole build, stage boundaries included. (Without the limit
    every request arrives at once: 15% over the burst, more than the transit slack allows.)"""
    with start_openai_server() as server:
        args = ["--disciplines", TWO, "--configs", "syllabi"]
        code, _, err = glan(*build_args(server, tmp_path / "free", "--preset", "smoke", *args))
        assert code == 0, err
        free = server.log()
        requests = len(free)
        tokens = sum(record["prompt_tokens"] + record["max_tokens"] for record in free)
        # A limit's burst is 10 s of it: 85% of the build; the rest waits about 1.8 s.
        rpm, tpm = round(6 * 0.85 * requests), round(6 * 0.85 * tokens)
        taxonomy = project(tmp_path, rpm={"limits": {"requests_per_minute": rpm}},
                           tpm={"limits": {"tokens_per_minute": tpm}})
        logs = {}
        for preset in ("rpm", "tpm"):
            server.reset()
            code, _, err = glan(*build_args(server, tmp_path / preset, "--taxonomy", taxonomy, "--preset", preset,
                                            *args))
            assert code == 0, err
            logs[preset] = sorted(server.log(), key=lambda record: record["received"])
    for log in logs.values():
        assert sorted(record["body_sha256"] for record in log) == sorted(record["body_sha256"] for record in free)
    times = [record["received"] for record in logs["rpm"]]
    assert within_bucket(times, [1] * requests, rpm, slack=0)
    times = [record["received"] for record in logs["tpm"]]
    assert within_bucket(times, [record["prompt_tokens"] + record["max_tokens"] for record in logs["tpm"]], tpm,
                         slack=1)


@pytest.mark.parametrize(("model", "status", "message", "advice"), [
    ("no-such-model", 404, "The model `no-such-model` does not exist or you do not have access to it.",
     "check the base URL and the model name"),
    ("secret-model", 403, "Project `proj_test` does not have access to model `secret-model`",
     "check that the key in $OPENAI_API_KEY may use this model"),
])
def test_a_model_the_endpoint_refuses_stops_the_run_at_once(tmp_path, model, status, message, advice):
    with start_openai_server(models=["test-model", "secret-model"], forbidden_models=["secret-model"]) as server:
        code, _, err = glan("build", "--preset", "smoke", "--disciplines", TWO, "--model", model, "--base-url",
                            server.base_url, "--concurrency", "2", "--out", tmp_path / "dist",
                            "--work-dir", tmp_path / ".glan")
        log = server.log()
    assert code == 2
    assert f"glan: {server.base_url}: HTTP {status}: {message} (model {model}); {advice}." in err
    assert 1 <= len(log) <= 2 and {(record["status"], record["model"]) for record in log} == {(status, model)}
    assert not (tmp_path / "dist").exists()


def test_transport_retries_run_out_and_the_item_fails_with_the_endpoints_words(tmp_path):
    """A proxy answering every request with an HTML 502: each request is tried 1 + max_retries times, then
    its item fails; the run ends (exit 1, 100% failed) and says what the endpoint answered."""
    taxonomy = project(tmp_path, few_retries={"limits": {"max_retries": 2}})
    with start_openai_server(fault_rate=1, faults={"502": 1}) as server:
        code, _, err = glan(*build_args(server, tmp_path, "--taxonomy", taxonomy, "--preset", "few_retries",
                                        "--disciplines", "Organic Chemistry", "--configs", "subjects"))
        log = server.log()
    tries = Counter(record["body_sha256"] for record in log)
    assert len(tries) == SMOKE["subjects"]["samples"] and set(tries.values()) == {3}
    assert code == 1
    reasons = [line for line in err.splitlines() if "http_502" in line]
    assert reasons and all("502 Bad Gateway" in line for line in reasons)


def test_openai_base_url_and_a_stage_key_from_its_own_variable(tmp_path, monkeypatch):
    """Subjects go to their own endpoint with the key in GLAN_TEST_SUBJECTS_KEY; the other stages, with no
    base_urls and no --base-url, go to OPENAI_BASE_URL with OPENAI_API_KEY. Each server takes one key only."""
    with start_openai_server(require_api_key="sk-subjects") as own, \
            start_openai_server(require_api_key="sk-default") as default:
        taxonomy = project(tmp_path, keyed={
            "subjects": {**SMOKE["subjects"], "base_urls": [own.base_url], "api_key_env": "GLAN_TEST_SUBJECTS_KEY"},
            "limits": {"max_retries": 1, "timeout_s": 5}})  # bounds a run that goes elsewhere
        monkeypatch.setenv("OPENAI_BASE_URL", default.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
        monkeypatch.setenv("GLAN_TEST_SUBJECTS_KEY", "sk-subjects")
        code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "keyed", "--disciplines", "Organic Chemistry",
                            "--configs", "syllabi", "--model", "test-model", "--out", tmp_path / "dist",
                            "--work-dir", tmp_path / ".glan")
        subjects_log, default_log = own.log(), default.log()
    assert code == 0, err
    assert {(record["schema"], record["status"]) for record in subjects_log} == {("SubjectList", 200)}
    assert {(record["schema"], record["status"]) for record in default_log} == {("Syllabus", 200)}
    assert len(subjects_log) == SMOKE["subjects"]["samples"]
    assert len(rows(tmp_path / "dist", "syllabi")) == len(default_log)


def test_structured_output_steps_down_to_the_prompt_and_remembers(tmp_path):
    """An endpoint that takes neither json_schema nor json_object + schema: the first request tries each mode
    once, everything after goes in prompt mode, and a later build starts there."""
    with start_openai_server(reject_json_schema=True, reject_json_object=True) as server:
        flags = ["--preset", "smoke", "--disciplines", "Organic Chemistry", "--concurrency", "1"]
        first_code, _, first_err = glan(*build_args(server, tmp_path, *flags, "--configs", "subjects"))
        first = server.log()
        server.reset()
        second_code, _, second_err = glan(*build_args(server, tmp_path, *flags, "--configs", "syllabi"))
        second = server.log()
    assert (first_code, second_code) == (0, 0), first_err + second_err
    assert [(record["response_format"], record["status"]) for record in first] == \
        [("json_schema", 400), ("json_object", 400)] + [(None, 200)] * SMOKE["subjects"]["samples"]
    assert second and {(record["response_format"], record["schema"], record["status"]) for record in second} == \
        {(None, "Syllabus", 200)}
    assert len(rows(tmp_path / "dist", "syllabi")) == len(second)
