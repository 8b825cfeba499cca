"""Endpoint replies are untrusted, and endpoints die: what `glan build` makes of a hostile or broken endpoint.

Every reply glan cannot read is a failed try with its reason (never a traceback, never a cache entry that
breaks the next run); usage that is not a count cannot lift a budget; a reply over its bound is refused as
it arrives; the API key is redacted before anything cuts a text; a dead endpoint stops the build with one
line and the same command resumes; `glan cache check` moves aside what an older glan kept of such replies.
Through the CLI against the OpenAI test server (its knobs raw_reply, huge_reply_bytes, down_from), plus the
reply reader and the output parser on their own.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
import yaml

from glan.llm import structured
from glan.llm.attempts import Attempts, LLMRequest
from glan.llm.cache import Cache, CacheEntryUnreadable, Response
from glan.llm.reply import read_completion, reply_limit
from glan.llm.transport import MAX_RETRY_AFTER_S, _retry_after
from glan.schemas import subject_list_model
from tests.helpers import REPO, SMOKE, glan, project, rows, wait_until
from tests.servers import start_openai_server

ONE = "Organic Chemistry"
TWO = "Organic Chemistry,Linear Algebra"
UNIT_CACHE = "cache/organic-chemistry.sqlite"
SUBJECTS_PARAMS = yaml.safe_load((REPO / "prompts" / "subjects.yaml").read_text())["params"]
NESTED = "[" * 10_000 + "]" * 10_000  # RecursionError in the standard library's JSON decoder


def completion(content="{}", usage=None, **choice) -> str:
    """A chat completion body, as text, with these fields in its first choice."""
    usage = {"prompt_tokens": 10, "completion_tokens": 10} if usage is None else usage
    return json.dumps({"id": "x", "object": "chat.completion", "model": "test-model", "usage": usage, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop", **choice}]})


def build_args(server, tmp: Path, *flags) -> list:
    return ["build", "--model", "test-model", "--base-url", server.base_url, "--out", tmp / "dist",
            "--work-dir", tmp / ".glan", *flags]


def failures(work: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((work / "units").glob("*/*/failures.jsonl"))
            for line in path.read_text().splitlines()]


def cached(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT key, text, prompt_tokens, completion_tokens FROM responses").fetchall()
    finally:
        db.close()


def no_bug(err: str) -> bool:
    return "Traceback" not in err and "bug in glan" not in err


# -- the reply reader and the output parser ------------------------------------------------------------------

@pytest.mark.parametrize(("body", "problem"), [
    ([], "the reply is a list, not a JSON object"),
    ({"choices": {"0": {}}}, "choices is a dict, not a list"),
    ({"choices": []}, "choices is empty"),
    ({"choices": [7]}, "choices[0].message is missing"),
    ({"choices": [{"finish_reason": "stop"}]}, "choices[0].message is missing"),
    ({"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}]}, "the content is a list, not a string"),
    ({"choices": [{"message": {"content": 42}}]}, "the content is an int, not a string"),
    ({"choices": [{"message": {"content": "\ud800"}}]}, "the content holds a lone surrogate, which is not text"),
    ({"choices": [{"message": {"content": "x"}, "finish_reason": ["stop"]}]}, "finish_reason is a list, not a string"),
    ({"choices": [{"message": {"content": "x"}}], "usage": "12"}, "usage is a str, not an object"),
    ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "12"}},
     "usage prompt_tokens is '12', not a whole number of at least 0"),
    ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 1.5}},
     "usage prompt_tokens is 1.5, not a whole number of at least 0"),
    ({"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": -10**12}},
     "usage completion_tokens is -1000000000000, not a whole number of at least 0"),
    ({"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": True}},
     "usage completion_tokens is True, not a whole number of at least 0"),
])
def test_a_reply_glan_cannot_keep_is_refused_with_what_is_wrong(body, problem):
    with pytest.raises(ValueError) as refused:
        read_completion(body, None)
    assert str(refused.value) == problem


def test_what_a_reply_leaves_out_is_read_as_before():
    """No usage: 0 tokens (some servers report none); no content: the empty output, which fails as "empty"."""
    assert read_completion({"choices": [{"message": {"content": None}}]}, None) == Response("", None, 0, 0)
    assert read_completion({"choices": [{"message": {"content": "x"}, "finish_reason": "length"}],
                            "usage": {"prompt_tokens": 3}}, None) == Response("x", "length", 3, 0)


def test_the_key_is_taken_out_of_what_a_reply_keeps():
    key = "sk-test-" + "0123456789" * 4
    body = {"choices": [{"message": {"content": f"echo {key}!"}, "finish_reason": key}]}
    assert read_completion(body, key) == Response("echo ***!", "***", 0, 0)


@pytest.mark.parametrize(("params", "limit"), [
    ({"max_tokens": 1024}, 2**20 + 32 * 1024),
    ({"max_completion_tokens": 100}, 2**20 + 32 * 100),
    ({"temperature": 1.0}, 4 * 2**20),
])
def test_a_replys_bound_follows_max_tokens(params, limit):
    assert reply_limit(params) == limit


@pytest.mark.parametrize(("headers", "wait"), [
    ({"retry-after": "2.5"}, 2.5),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after": "1e9"}, MAX_RETRY_AFTER_S),
    ({"retry-after": "inf"}, MAX_RETRY_AFTER_S),
    ({"retry-after": "Wed, 21 Oct 2999 07:28:00 GMT"}, MAX_RETRY_AFTER_S),
    ({"retry-after": "nan"}, None),
    ({"retry-after-ms": "-5"}, None),
    ({"retry-after": "soon"}, None),
])
def test_a_stated_wait_is_believed_up_to_ten_minutes(headers, wait):
    """A Retry-After of "inf" or of a date in 2999 once held every request to the endpoint for good."""
    assert _retry_after(headers) == wait


def test_a_cached_text_the_parser_chokes_on_is_an_invalid_attempt_and_replays_alike(tmp_path):
    """A text of 10,000 nested arrays (RecursionError inside the json module) is attempt 0's failure; attempt 1
    has a key of its own; replayed from the cache, it fails the same way."""
    cache = Cache(tmp_path / "cache.sqlite")
    request = LLMRequest("item", [{"role": "user", "content": "hi"}], {"max_tokens": 10},
                          subject_list_model(["college"], 1, 3))
    first = Attempts("test-model", request, max_attempts=2)
    cache.put(first.key, "subjects", "test-model", Response(NESTED, "stop", 1, 1))
    first.replay(cache)
    assert first.reason == ("unparseable: RecursionError: maximum recursion depth exceeded while decoding a JSON "
                            "array from a unicode string")
    assert (first.attempt, first.done) == (1, False)
    cache.close()

    again = Attempts("test-model", request, max_attempts=2)
    assert again.replay(Cache(tmp_path / "cache.sqlite")) == 1
    assert (again.reason, again.attempt, again.key) == (first.reason, 1, first.key)


def test_the_lenient_json_reader_tries_a_bounded_number_of_starts(monkeypatch):
    """Each failed start costs up to the text's length (the decode error counts its lines): a reply of a million
    "{" would take minutes. Only the first 32 brackets are tried."""
    tried = []

    class Counting(json.JSONDecoder):
        def raw_decode(self, text, start=0):
            tried.append(start)
            return super().raw_decode(text, start)

    monkeypatch.setattr(structured, "_decoder", Counting(strict=False))
    with pytest.raises(ValueError, match="no JSON value"):
        structured.first_json_value("{" * 1_000_000)
    assert tried == list(range(32))
    tried.clear()
    assert structured.first_json_value('see [note] and {x}: ```json\n{"a": [1]}\n```') == {"a": [1]}


# -- through `glan build` ------------------------------------------------------------------------------------

NOT_JSON = r"bad_response: not JSON \(.*\)"  # orjson's words for what is wrong, then the body's start
HOSTILE = {  # body -> the reason each item fails with (a regular expression)
    "content a list": (completion([{"type": "text", "text": "hi"}]),
                       "bad_response: the content is a list, not a string"),
    "content a number": (completion(42), "bad_response: the content is an int, not a string"),
    "choices not a list": ('{"choices": {"0": {"message": {"content": "{}"}}}}',
                           "bad_response: choices is a dict, not a list"),
    "choices empty": ('{"choices": []}', "bad_response: choices is empty"),
    "message missing": ('{"choices": [{"index": 0, "finish_reason": "stop"}]}',
                        r"bad_response: choices\[0\].message is missing"),
    "usage strings": (completion(usage={"prompt_tokens": "12", "completion_tokens": "3"}),
                      "bad_response: usage prompt_tokens is '12', not a whole number of at least 0"),
    "usage floats": (completion(usage={"prompt_tokens": 12.5, "completion_tokens": 3}),
                     r"bad_response: usage prompt_tokens is 12\.5, not a whole number of at least 0"),
    "usage negative": (completion(usage={"prompt_tokens": 12, "completion_tokens": -10**12}),
                       "bad_response: usage completion_tokens is -1000000000000, not a whole number of at least 0"),
    "usage bools": (completion(usage={"prompt_tokens": True, "completion_tokens": 3}),
                    "bad_response: usage prompt_tokens is True, not a whole number of at least 0"),
    "finish_reason an object": (completion(finish_reason={"type": "stop"}),
                                "bad_response: finish_reason is a dict, not a string"),
    "lone surrogate escaped": (completion("\ud800"), NOT_JSON + r': \{"id": "x"'),
    "lone surrogate raw": ('{"choices": [{"message": {"content": "\ud800"}}]}', NOT_JSON + r': \{"choices"'),
    "html": ("<html><body><h1>It works!</h1></body></html>", NOT_JSON + ": <html><body><h1>It works!</h1>"),
    "nested body": (NESTED, NOT_JSON + r": \[\[\[\["),
}


@pytest.mark.parametrize("body, reason", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_reply_glan_cannot_read_is_a_failed_try_with_its_reason(tmp_path, body, reason):
    """Every reply is hostile: each item's tries (1 + max_retries) are refused, the item fails with the reason in
    failures.jsonl and the summary, nothing is cached, and the cache is sound for the next run."""
    taxonomy = project(tmp_path, hostile={"limits": {"max_retries": 1}})
    with start_openai_server(raw_reply=body) as server:
        code, _, err = glan(*build_args(server, tmp_path, "--taxonomy", taxonomy, "--preset", "hostile",
                                        "--disciplines", ONE, "--configs", "subjects"))
        log = server.log()
    samples = SMOKE["subjects"]["samples"]
    assert code == 1 and no_bug(err), err
    assert len(log) == 2 * samples and {record["status"] for record in log} == {200}
    failed = failures(tmp_path / ".glan")
    assert len(failed) == samples and all(re.match(reason, failure["reason"]) for failure in failed), failed
    assert len([line for line in err.splitlines() if re.match(rf"  subjects \S+ {reason}", line)]) == samples
    assert cached(tmp_path / ".glan" / UNIT_CACHE) == []
    assert glan("cache", "check", "--work-dir", tmp_path / ".glan")[0] == 0


def test_a_reply_that_cannot_be_parsed_is_an_invalid_attempt_and_the_rerun_replays_it(tmp_path):
    """The first two replies (attempt 0 of both subject samples) are 10,000 nested arrays: cached, invalid, and
    attempt 1 is asked for. A rerun replays both attempts from the cache, against a healthy endpoint too."""
    with start_openai_server(raw_reply=completion(NESTED), raw_reply_count=2) as server:
        args = build_args(server, tmp_path, "--preset", "smoke", "--disciplines", ONE, "--configs", "subjects")
        code, _, err = glan(*args)
        first = server.log()
        subjects = rows(tmp_path / "dist", "subjects")
        assert code == 0 and no_bug(err), err
        assert len(first) == 4 and len({record["body_sha256"] for record in first}) == 4  # 2 attempts x 2 samples
        assert sorted(text == NESTED for _, text, _, _ in cached(tmp_path / ".glan" / UNIT_CACHE)) == \
            [False, False, True, True]

        server.configure(raw_reply=None)
        server.reset()
        shutil.rmtree(tmp_path / ".glan" / "units")  # else the complete unit is not even replayed
        code, _, err = glan(*args)
        assert code == 0 and no_bug(err), err
        assert server.stats()["requests"] == 0
        assert rows(tmp_path / "dist", "subjects") == subjects


def test_an_unparseable_reply_at_the_last_attempt_is_the_items_failure_and_replays_alike(tmp_path):
    taxonomy = project(tmp_path, once={"limits": {"max_attempts": 1}})
    reason = "unparseable: RecursionError: maximum recursion depth exceeded while decoding a JSON array"
    with start_openai_server(raw_reply=completion(NESTED)) as server:
        args = build_args(server, tmp_path, "--taxonomy", taxonomy, "--preset", "once", "--disciplines", ONE,
                          "--configs", "subjects")
        runs = [glan(*args)]
        server.configure(raw_reply=None)
        server.reset()
        shutil.rmtree(tmp_path / ".glan" / "units")
        runs.append(glan(*args))
        assert server.stats()["requests"] == 0
    for code, _, err in runs:
        assert code == 1 and no_bug(err), err
        assert len([line for line in err.splitlines() if line.startswith("  subjects ") and reason in line]) == \
            SMOKE["subjects"]["samples"]
    assert [failure["reason"][:len(reason)] for failure in failures(tmp_path / ".glan")] == \
        [reason] * SMOKE["subjects"]["samples"]


@pytest.mark.parametrize("count", [None, 1], ids=["every reply", "the first reply"])
def test_usage_that_is_not_a_count_cannot_lift_the_budget(tmp_path, count):
    """Usage of -10^12 tokens once let --max-cost through (the summary said -4,400,000,000 USD). Such a reply is
    refused, and counted at the most it could have cost (its prompt and all of max_tokens): the budget stops the
    build within itself whether every reply lies or one does."""
    negative = completion(usage={"prompt_tokens": -10**12, "completion_tokens": 5})
    with start_openai_server(raw_reply=negative, raw_reply_count=count) as server:
        code, _, err = glan(*build_args(server, tmp_path, "--preset", "smoke", "--disciplines", TWO,
                                        "--price", "test-model=100,100", "--max-cost", "1"))
        log = server.log()
    report = json.loads((tmp_path / ".glan" / "run_report.json").read_text())
    spent = sum(usage["cost"] for usage in report["usage"])
    assert code == 1 and no_bug(err), err
    assert report["stop_reason"].startswith("--max-cost 1 USD reached")
    assert 0 < spent <= 1
    assert "glan: the build is incomplete: --max-cost 1 USD reached" in err
    refused = [record for record in log if count is None or record["n"] < count]
    assert refused and all(record["status"] == 200 for record in refused)
    responses = [row for path in (tmp_path / ".glan" / "cache").glob("*.sqlite") for row in cached(path)]
    assert all(prompt >= 0 and completion >= 0 for _, _, prompt, completion in responses)
    assert len(responses) == len(log) - len(refused)


def test_a_batch_answer_glan_cannot_read_is_its_requests_failure(tmp_path):
    """Batch API answers are read as online replies are: usage of -10^12 tokens is refused, never cached or
    counted, and its request fails with the reason."""
    reason = "batch: bad_response: usage prompt_tokens is -1000000000000, not a whole number of at least 0"
    negative = completion(usage={"prompt_tokens": -10**12, "completion_tokens": 5})
    with start_openai_server(raw_reply=negative, batch_delay_s=0.1) as server:
        code, _, err = glan(*build_args(server, tmp_path, "--preset", "smoke", "--disciplines", ONE, "--configs",
                                        "subjects", "--batch", "--price", "test-model=10,10"))
    report = json.loads((tmp_path / ".glan" / "run_report.json").read_text())
    assert code == 1 and no_bug(err), err
    assert [failure["reason"] for failure in failures(tmp_path / ".glan")] == [reason] * SMOKE["subjects"]["samples"]
    assert [(usage["prompt_tokens"], usage["cost"]) for usage in report["usage"]] == [(0, 0)]
    assert cached(tmp_path / ".glan" / "cache.sqlite") == []


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_a_reply_over_its_bound_is_refused_while_it_is_read(tmp_path, gzip):
    """50 MB replies (streamed, no Content-Length; or a few KB of gzip that inflate to 50 MB): each is refused once
    it passes its bound, derived from the request's max_tokens; the server is cut off long before the end, and
    the cache keeps nothing."""
    taxonomy = project(tmp_path, hostile={"limits": {"max_retries": 1}})
    size = 50_000_000
    with start_openai_server(huge_reply_bytes=size, huge_reply_gzip=gzip) as server:
        code, _, err = glan(*build_args(server, tmp_path, "--taxonomy", taxonomy, "--preset", "hostile",
                                        "--disciplines", ONE, "--configs", "subjects"))
        log = server.log()
    limit = reply_limit(SUBJECTS_PARAMS)
    reason = (f"too_large: HTTP 200: the reply passed {limit:,} bytes, the most glan reads of a reply to this "
              "request's max_tokens; refused as it arrived")
    assert code == 1 and no_bug(err), err
    assert [failure["reason"] for failure in failures(tmp_path / ".glan")] == [reason] * SMOKE["subjects"]["samples"]
    assert len(log) == 2 * SMOKE["subjects"]["samples"]
    if not gzip:  # (compressed, the whole body is a few KB on the wire)
        assert all(record["sent_bytes"] < size // 2 for record in log)
    assert cached(tmp_path / ".glan" / UNIT_CACHE) == []
    assert sum(path.stat().st_size for path in (tmp_path / ".glan").rglob("*") if path.is_file()) < limit


KEY = "sk-test-" + "Zq8vN2kLw4Rt6Yp0Hs3Jd5Fg7Bx9Cm1Ea2Ui4Oo6"
ECHOES = {  # where the endpoint echoes the key: status, body; each straddles a cut glan makes
    "200 page, cut at 200": (200, "<html>" + "x" * 186 + "{api_key} and again {api_key}</html>"),
    "500 page, cut at 300": (500, "<html>" + "x" * 286 + "{api_key}</html>"),
    "400 error message, cut at 160 in the summary": (400, json.dumps({"error": {
        "message": "x" * 142 + "{api_key}", "type": "invalid_request_error"}})),
    "200 content, cut at 200 in failures.jsonl": (200, completion("y" * 190 + "{api_key}")),
}


@pytest.mark.parametrize("status, body", ECHOES.values(), ids=ECHOES.keys())
def test_the_api_key_is_redacted_before_any_cut(tmp_path, monkeypatch, status, body):
    """An endpoint echoes the key where glan cuts the text: no 8 characters of it are left in any file the build
    wrote or any line it printed; where it stood, failures.jsonl says ***."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    taxonomy = project(tmp_path, hostile={"limits": {"max_retries": 1}})
    with start_openai_server(raw_reply=body, raw_reply_status=status) as server:
        code, out, err = glan(*build_args(server, tmp_path, "--taxonomy", taxonomy, "--preset", "hostile",
                                          "--disciplines", ONE, "--configs", "subjects"))
    assert code == 1 and no_bug(err), err
    assert all("***" in failure["reason"] + failure["last_output"] for failure in failures(tmp_path / ".glan"))
    pieces = {KEY[start:start + 8] for start in range(len(KEY) - 7)}
    written = [path.read_bytes().decode(errors="replace") for path in tmp_path.rglob("*")
               if path.is_file() and not path.is_symlink()]
    for text in [out, err, *written]:
        assert not any(piece in text for piece in pieces)


def test_the_api_key_is_redacted_from_batch_errors(tmp_path, monkeypatch):
    """A Batch API endpoint that echoes the key in the error of every line: the failures say ***, and no 8
    characters of the key are left anywhere."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    error = json.dumps({"error": {"message": "x" * 142 + KEY, "type": "invalid_request_error"}})
    with start_openai_server(raw_reply=error, raw_reply_status=400, batch_delay_s=0.1) as server:
        code, out, err = glan(*build_args(server, tmp_path, "--preset", "smoke", "--disciplines", ONE, "--configs",
                                          "subjects", "--batch"))
    assert code == 1 and no_bug(err), err
    assert [failure["reason"] for failure in failures(tmp_path / ".glan")] == \
        [f"batch: invalid_request_error: {'x' * 142}***"] * SMOKE["subjects"]["samples"]
    pieces = {KEY[start:start + 8] for start in range(len(KEY) - 7)}
    written = [path.read_bytes().decode(errors="replace") for path in tmp_path.rglob("*")
               if path.is_file() and not path.is_symlink()]
    for text in [out, err, *written]:
        assert not any(piece in text for piece in pieces)


UNREADABLE = {  # a change to a cached row -> why glan cannot read it
    "prompt_tokens = -1000000000000": "usage prompt_tokens is -1000000000000, not a whole number of at least 0",
    "completion_tokens = 2.5": "usage completion_tokens is 2.5, not a whole number of at least 0",
    "text = CAST(text AS BLOB)": "the content is a bytes, not a string",
    "text = CAST(x'ff00ff' AS TEXT)": "its text is not UTF-8",
}


@pytest.mark.parametrize("change, problem", UNREADABLE.items(), ids=UNREADABLE.values())
def test_reading_a_cached_response_glan_cannot_read_is_one_line(tmp_path, change, problem):
    path = tmp_path / "cache" / "x.sqlite"
    cache = Cache(path)
    cache.put("k" * 64, "subjects", "test-model", Response("{}", "stop", 1, 1))
    cache.db.execute(f"UPDATE responses SET {change}")
    with pytest.raises(CacheEntryUnreadable) as unreadable:
        cache.get("k" * 64)
    assert str(unreadable.value).startswith(f"{path}: the cached response {'k' * 64} cannot be read ({problem}); ")
    assert unreadable.value.exit_code == 2


def _built_syllabi(server, tmp_path: Path) -> tuple[list, list[dict], Path]:
    """A smoke build of ONE's syllabi: its command, its rows, and its unit's cache file."""
    args = build_args(server, tmp_path, "--preset", "smoke", "--disciplines", ONE, "--configs", "syllabi")
    assert glan(*args)[0] == 0
    return args, rows(tmp_path / "dist", "syllabi"), tmp_path / ".glan" / UNIT_CACHE


def _replayed_next(work: Path, server) -> None:
    """The next build replays the cache, as after an interrupted build, and the server counts from 0."""
    shutil.rmtree(work / "units")
    server.reset()


def test_cache_check_moves_aside_the_responses_glan_cannot_read(tmp_path):
    """Rows an older glan kept of hostile replies (usage of -10^12, of 2.5 tokens; a text that is bytes, or not
    UTF-8) stop a build with one line naming the file; `glan cache check` moves them, as they are, into a file
    beside the cache; the next build pays for exactly those and writes the same rows."""
    work = tmp_path / ".glan"
    with start_openai_server() as server:
        args, syllabi, cache = _built_syllabi(server, tmp_path)
        db = sqlite3.connect(cache)
        keys = [key for (key,) in db.execute("SELECT key FROM responses ORDER BY key LIMIT 4")]
        problems = {}
        for key, (change, problem) in zip(keys, UNREADABLE.items()):
            db.execute(f"UPDATE responses SET {change} WHERE key = ?", (key,))
            problems[key] = problem
        db.commit()
        db.text_factory = bytes  # one text is not UTF-8
        before = db.execute("SELECT * FROM responses WHERE key IN (?,?,?,?) ORDER BY key", keys).fetchall()
        (first,) = db.execute("SELECT key FROM responses WHERE key IN (?,?,?,?) ORDER BY rowid", keys).fetchone()
        db.close()
        _replayed_next(work, server)

        code, _, err = glan(*args)
        assert code == 2 and no_bug(err), err
        assert re.fullmatch(
            rf"glan: {re.escape(str(cache))}: the cached response ({'|'.join(keys)}) cannot be read "
            rf"\(({'|'.join(map(re.escape, UNREADABLE.values()))})\); an older glan or another program wrote it. Run `glan cache check --work-dir "
            rf"{re.escape(str(work))}` to move such responses aside \(into a file beside the cache\), then run the "
            r"same command again: it sends those requests again.", err.splitlines()[-1])
        assert server.stats()["requests"] == 0

        code, out, _ = glan("cache", "check", "--work-dir", work)
        assert code == 1
        (moved_to,) = [path for path in cache.parent.iterdir()
                       if re.fullmatch(rf"{cache.name}\.unreadable-\d{{8}}T\d{{6}}", path.name)]
        assert out.splitlines()[-2:] == [
            f"{cache}: 4 responses glan cannot read (the first: {problems[first.decode()]}), moved to {moved_to}",
            f"{work}: 2 cache files, 1 with responses moved aside. Run the build again: it sends the requests whose "
            "responses were moved aside."]
        aside = sqlite3.connect(moved_to)
        aside.text_factory = bytes
        assert aside.execute("SELECT * FROM responses ORDER BY key").fetchall() == before
        aside.close()
        assert not {key for key, *_ in cached(cache)} & set(keys)

        code, _, err = glan(*args)
        assert code == 0, err
        assert server.stats()["requests"] == 4
        assert rows(tmp_path / "dist", "syllabi") == syllabi
        assert glan("cache", "check", "--work-dir", work)[:2] == (
            0, f"{work}: 2 cache files, no damage found by SQLite's integrity check, every response readable.\n")


def test_cache_check_moves_aside_a_response_with_more_cached_tokens_than_prompt_tokens(tmp_path):
    """A row counting more cached prompt tokens than prompt tokens is one Response refuses, and the build's line
    says to run `glan cache check`: the check moves it aside (it did not look at cached_tokens, and the build and
    the check sent each other back and forth), and the next build sends that one request again."""
    work = tmp_path / ".glan"
    with start_openai_server() as server:
        args, syllabi, cache = _built_syllabi(server, tmp_path)
        db = sqlite3.connect(cache)
        (key,) = db.execute("SELECT key FROM responses ORDER BY key LIMIT 1").fetchone()
        db.execute("UPDATE responses SET prompt_tokens = 5, cached_tokens = 6 WHERE key = ?", (key,))
        db.commit()
        db.close()
        _replayed_next(work, server)
        problem = "usage cached_tokens 6 is more than the 5 prompt tokens"

        code, _, err = glan(*args)
        assert code == 2 and no_bug(err), err
        assert err.splitlines()[-1].startswith(f"glan: {cache}: the cached response {key} cannot be read ({problem}); ")
        assert server.stats()["requests"] == 0

        code, out, _ = glan("cache", "check", "--work-dir", work)
        assert code == 1
        (moved_to,) = [path for path in cache.parent.iterdir() if path.name.startswith(f"{cache.name}.unreadable-")]
        assert out.splitlines()[-2] == (
            f"{cache}: 1 responses glan cannot read (the first: {problem}), moved to {moved_to}")
        assert [row[0] for row in cached(moved_to)] == [key]
        assert key not in {row[0] for row in cached(cache)}

        code, _, err = glan(*args)
        assert code == 0, err
        assert server.stats()["requests"] == 1
        assert rows(tmp_path / "dist", "syllabi") == syllabi


# -- a dead endpoint -----------------------------------------------------------------------------------------

DEAD_AFTER_S = 1
ANSWERED = 6  # requests the endpoint answers before it dies


def _kill_after_answers(server) -> None:
    try:
        wait_until(lambda: server.stats()["responses"] >= ANSWERED, f"the endpoint to answer {ANSWERED} requests")
    finally:  # in a thread, a failed wait is not seen: the build's assertions then fail instead
        server.process.kill()
    server.process.wait()


def _files(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("how", ["killed", "reset", "hang"])
def test_a_dead_endpoint_stops_the_build_and_the_same_command_resumes(tmp_path, how):
    """The endpoint dies mid-build: its process killed (connections refused), or every connection dropped, or every
    request left hanging past the timeout. After limits.dead_after_s of that the build stops: exit 1, one line
    naming the endpoint, every response received cached, the complete folder at --out as it was. The same command,
    the endpoint back, sends only what is missing: with what was cached, exactly the requests of an uninterrupted
    build, and the same rows."""
    taxonomy = project(tmp_path, mortal={"limits": {"dead_after_s": DEAD_AFTER_S, "timeout_s": 2}})
    out, work = tmp_path / "dist", tmp_path / ".glan"
    server = start_openai_server(latency_ms=20 if how == "killed" else 0, hang_s=60)
    try:
        base = ["build", "--taxonomy", taxonomy, "--preset", "mortal", "--model", "test-model", "--base-url",
                server.base_url, "--out", out, "--work-dir", work, "--concurrency", "4"]
        assert glan(*base, "--disciplines", "Genetics")[0] == 0
        complete = _files(out)
        server.reset()

        args = [*base, "--disciplines", f"Genetics,{TWO}"]  # Genetics is built: the unit is not run again
        if how == "killed":
            killer = threading.Thread(target=_kill_after_answers, args=(server,))
            killer.start()
            code, _, err = glan(*args)
            killer.join()
        else:
            server.configure(down_from=ANSWERED, down_fault=how)
            code, _, err = glan(*args)
            log = server.log()
            assert [record["status"] for record in log[:ANSWERED]] == [200] * ANSWERED
            assert {record["fault"] for record in log[ANSWERED:]} == {"down"}
        assert code == 1 and no_bug(err), err
        assert re.fullmatch(
            rf"glan: the build is incomplete: the endpoint {re.escape(server.base_url)} has answered nothing for "
            rf"\d+ s \((connection|timeout): [^;]+; limits.dead_after_s is {DEAD_AFTER_S}\). What was complete is in "
            rf"{re.escape(str(out))}.incomplete; {re.escape(str(out))} was left as it was. Run the same command to go "
            "on: nothing received is paid twice.", err.splitlines()[-1]), err
        assert sum(line.startswith("glan: ") for line in err.splitlines()) == 2  # the plan, and this
        assert _files(out) == complete
        received = {key for path in (work / "cache").glob("*.sqlite") if path.name != "genetics.sqlite"
                    for key, *_ in cached(path)}
        if how == "killed":
            assert len(received) >= ANSWERED
        else:
            assert len(received) == ANSWERED
            answered_bodies = {record["body_sha256"] for record in log[:ANSWERED]}

        if how == "killed":
            server.stop()
            server = start_openai_server(port=server.port)
        else:
            server.configure(down_from=None)
            server.reset()
        code, _, err = glan(*args)
        resumed = server.log()
    finally:
        server.stop()
    assert code == 0, err
    assert {record["status"] for record in resumed} == {200}
    if how != "killed":
        assert not answered_bodies & {record["body_sha256"] for record in resumed}
    with start_openai_server() as clean:
        assert glan("build", "--taxonomy", taxonomy, "--preset", "mortal", "--model", "test-model", "--base-url",
                    clean.base_url, "--out", tmp_path / "clean", "--work-dir", tmp_path / ".clean",
                    "--disciplines", TWO)[0] == 0
        uninterrupted = clean.log()
    sent = [record["body_sha256"] for record in resumed]
    assert len(set(sent)) == len(sent) and set(sent) <= {record["body_sha256"] for record in uninterrupted}
    assert len(sent) + len(received) == len(uninterrupted)
    for config in ("subjects", "syllabi", "questions", "instructions"):
        splits = ("train", "test") if config == "instructions" else ("train",)
        assert sorted(json.dumps(row, sort_keys=True) for row in rows(out, config, splits)
                      if row["discipline"] != "Genetics") == \
            sorted(json.dumps(row, sort_keys=True) for row in rows(tmp_path / "clean", config, splits))


def test_a_dead_endpoint_does_not_wait_for_its_requests_in_flight(tmp_path):
    """One request hangs (for longer than the build would wait), the next ones find the endpoint gone: the build
    stops on those, and does not wait for the hanging one, whose answer never came."""
    taxonomy = project(tmp_path, mortal={"limits": {"dead_after_s": DEAD_AFTER_S, "timeout_s": 300}})
    with start_openai_server(faults_at={str(ANSWERED): "hang"}, hang_s=300, down_from=ANSWERED + 1) as server:
        code, _, err = glan(*build_args(server, tmp_path, "--taxonomy", taxonomy, "--preset", "mortal",
                                        "--disciplines", TWO, "--concurrency", "4"))
        hanging = server.log()[ANSWERED]
    assert code == 1 and no_bug(err), err
    assert "has answered nothing for" in err.splitlines()[-1]
    assert hanging["fault"] == "hang" and hanging["responded"] is None
