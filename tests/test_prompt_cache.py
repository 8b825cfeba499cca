"""Cached input: read from the endpoint's usage (untrusted), counted, priced at cached_input_per_million, shown in
the summary, run report and estimate; OpenAI gets the subject as prompt_cache_key, other endpoints nothing."""

import json
import shutil
import sqlite3
from dataclasses import replace

import pytest

from glan.estimate import estimate
from glan.llm import routes
from glan.llm.accounting import ModelPrice
from glan.llm.cache import Cache, Response
from glan.llm.reply import read_completion
from glan.llm.routes import OPENAI_URL, Endpoint
from glan.plan import resolve
from tests.helpers import build_args, glan, rows
from tests.servers import start_openai_server
from tests.test_estimate import run_settings

DISCIPLINES = "Organic Chemistry,Linear Algebra"  # those tests.helpers.build_args builds
# vLLM-like: any prefix, in blocks of 16 tokens (OpenAI's 1,024-token minimum is more than smoke's prompts hold).
PREFIX_BLOCKS = {"prompt_cache_min_tokens": 0, "prompt_cache_block_tokens": 16}


def test_cached_tokens_are_counted_and_priced_from_the_servers_usage(tmp_path):
    with start_openai_server(**PREFIX_BLOCKS) as server:
        code, _, err = glan(*build_args(server, tmp_path / "dist", tmp_path / ".glan", "--price",
                                        "test-model=1,2,0.25"))
        log = server.log()
        report = json.loads((tmp_path / ".glan" / "run_report.json").read_text())
        # Units made again from the cache alone count the same tokens: the cache keeps the cached figure.
        shutil.rmtree(tmp_path / ".glan" / "units")
        again = glan(*build_args(server, tmp_path / "again", tmp_path / ".glan"))
        assert again[0] == 0 and server.stats()["requests"] == len(log)
    assert code == 0, err
    usage = {entry["stage"]: entry for entry in report["usage"]}
    served = {"question": 0, "answer": 0}
    for record in log:
        if record["output"] in served:
            served[record["output"]] += record["cached_tokens"]
    assert served["question"] > 0  # a subject's questions share its syllabus
    assert usage["questions"]["cached_tokens"] == served["question"]
    assert usage["answers"]["cached_tokens"] == served["answer"]
    for entry in usage.values():
        assert 0 <= entry["cached_tokens"] <= entry["prompt_tokens"]
        expected = ModelPrice(1, 2, 0.25).cost(entry["prompt_tokens"], entry["completion_tokens"], entry["cached_tokens"])
        assert entry["cost"] == pytest.approx(expected)
    header = next(line.split() for line in err.splitlines() if line.startswith("stage ") and "cache hits" in line)
    assert header[5:7] == ["tokens", "in"] and header[7:9] == ["cached", "in"]
    questions = next(row.split() for row in err.splitlines() if row.startswith("questions "))
    assert int(questions[5].replace(",", "")) == served["question"]  # stage, rows, requests, hits, in, cached in
    # The manifest and the card: what the folder's responses took, per stage (here all sent by this build).
    manifest = json.loads((tmp_path / "dist" / "glan_manifest.json").read_text())
    for stage, entry in usage.items():
        assert manifest["stages"][stage]["tokens"] == {
            "prompt": entry["prompt_tokens"], "cached": entry["cached_tokens"], "completion": entry["completion_tokens"]
        }
    assert json.loads((tmp_path / "again" / "glan_manifest.json").read_text())["stages"] == manifest["stages"]
    card = (tmp_path / "dist" / "README.md").read_text()
    assert "| tokens in | of them cached | tokens out |" in card
    row = next(line for line in card.splitlines() if line.startswith("| questions |"))
    assert row.endswith(f"| {usage['questions']['prompt_tokens']:,} | {served['question']:,} | "
                        f"{usage['questions']['completion_tokens']:,} |")


def test_prompt_cache_key_is_the_subject_to_openai_and_absent_elsewhere(tmp_path, monkeypatch):
    assert Endpoint(OPENAI_URL).is_openai and Endpoint("https://api.openai.com/v1/").is_openai
    assert not Endpoint("http://127.0.0.1:8000/v1").is_openai
    assert not Endpoint("https://api.openai.com.example.org/v1").is_openai
    with start_openai_server() as server:
        assert glan(*build_args(server, tmp_path / "local" / "dist", tmp_path / "local" / ".glan"))[0] == 0
        assert {record["prompt_cache_key"] for record in server.log()} == {None}
        server.reset()
        # The test server stands in for OpenAI: every endpoint counts as OpenAI's own.
        monkeypatch.setattr(routes.Endpoint, "is_openai", property(lambda self: True))
        assert glan(*build_args(server, tmp_path / "openai" / "dist", tmp_path / "openai" / ".glan"))[0] == 0
        log = server.log()
    questions = [record for record in log if record["output"] == "question"]
    subjects = {row["subject_id"] for row in rows(tmp_path / "openai" / "dist", "syllabi")}
    assert {record["prompt_cache_key"] for record in questions} == subjects
    assert {record["prompt_cache_key"] for record in log if record["output"] != "question"} == {None}
    # A subject's questions are sent together: its key is one run of arrivals per unit (two units interleave).
    runs = [
        key
        for index, key in enumerate(r["prompt_cache_key"] for r in questions)
        if index == 0 or questions[index - 1]["prompt_cache_key"] != key
    ]
    assert len(runs) <= 2 * len(subjects)


@pytest.mark.parametrize("figure", [-5, 10**9, "12", 3.5, True, None, {"n": 1}, [1]])
def test_a_cached_figure_glan_cannot_believe_counts_as_none(figure):
    """usage is untrusted: a cached figure that is not a whole number from 0 to the prompt's tokens is no discount
    (the prompt is priced in full), and the reply is kept, not failed."""
    for usage in (
        {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": figure}},
        {"prompt_tokens": 100, "prompt_tokens_details": figure},
    ):
        body = {
            "choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
            "usage": usage,
            "timings": {"cache_n": figure},
        }
        assert read_completion(body, None).cached_tokens == 0


def test_cached_figures_are_read_from_openai_and_llama_cpp():
    choice = {"message": {"content": "x"}, "finish_reason": "stop"}
    openai = {"choices": [choice], "usage": {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 64}}}
    llama_cpp = {"choices": [choice], "usage": {"prompt_tokens": 100}, "timings": {"cache_n": 90, "prompt_n": 10}}
    assert read_completion(openai, None).cached_tokens == 64
    assert read_completion(llama_cpp, None).cached_tokens == 90
    assert read_completion({"choices": [choice], "usage": {"prompt_tokens": 100}}, None).cached_tokens == 0


def test_the_estimates_cached_share_is_within_ten_percent_of_the_builds(tmp_path):
    """With the syllabi built, the questions' prompts are rendered offline and the prompt cache model gives their
    cached share; the build that follows gets the server's own figures."""
    with start_openai_server(**PREFIX_BLOCKS) as server:
        settings = run_settings(server, tmp_path, "warm")
        code, _, err = glan(*build_args(server, tmp_path / "syllabi", settings.work_dir, "--configs", "syllabi"))
        assert code == 0, err
        server.reset()
        settings = replace(settings, disciplines=tuple(DISCIPLINES.split(",")))
        estimates = {e.stage: e for e in estimate(resolve(settings), ["instructions"])}
        assert server.stats()["requests"] == 0
        code, _, err = glan(*build_args(server, tmp_path / "dist", settings.work_dir))
        assert code == 0, err
    usage = {e["stage"]: e for e in json.loads((tmp_path / "warm" / ".glan" / "run_report.json").read_text())["usage"]}
    built = usage["questions"]["cached_tokens"] / usage["questions"]["prompt_tokens"]
    estimated = estimates["questions"].cached_tokens / estimates["questions"].prompt_tokens
    assert built > 0.3
    assert abs(estimated - built) <= 0.1 * built


def test_a_cache_file_of_glan_0_2_gains_the_cached_column_and_keeps_its_responses(tmp_path):
    path = tmp_path / "cache.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE responses (key TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL, "
        "finish_reason TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created REAL NOT NULL);"
        "INSERT INTO responses VALUES ('old', 'questions', 'm', 'Why?', 'stop', 10, 2, 0);"
    )
    db.close()
    cache = Cache(path)
    cache.put("new", "questions", "m", Response("How?", "stop", 20, 3, 16))
    cache.commit()
    assert cache.get("old") == Response("Why?", "stop", 10, 2, 0)
    assert cache.token_sums_by_stage()["questions"] == (2, 30, 5, 16)
    cache.close()
