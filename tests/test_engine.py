"""The engine against faulty endpoints, through `glan build`: faults, 429 back-off, fail-fast, budgets,
per-stage endpoints, the work-dir lock, and no API key anywhere on disk or in the logs."""

import json
import re
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset

from glan.cli import main
from glan.workdir import exclusive
from tests.servers import start_openai_server
from tests.servers.openai_server import FAULT_KINDS

REPO = Path(__file__).resolve().parents[1]
DISCIPLINES = "Organic Chemistry,Linear Algebra,Genetics,Geology"
SMOKE = yaml.safe_load((REPO / "taxonomy.yaml").read_text())["presets"]["smoke"]
# What the test server writes for a free-text question, and for an answer: sentences of lower-case clauses.
SERVER_QUESTION = re.compile(r"How does( [a-z]+)+ explain( [a-z]+)+\?")
SERVER_ANSWER = re.compile(r"[A-Z][a-z]*( [a-z]+)+\.( [A-Z][a-z]*( [a-z]+)+\.)+")


def taxonomy_with(tmp: Path, **presets) -> Path:
    """A copy of the shipped taxonomy with extra presets (each on top of smoke), prompts beside it."""
    data = yaml.safe_load((REPO / "taxonomy.yaml").read_text())
    for name, preset in presets.items():
        data["presets"][name] = {**SMOKE, **preset}
    (tmp / "prompts").symlink_to(REPO / "prompts")
    path = tmp / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build(tmp: Path, *flags: str, name: str = "run") -> tuple[int, Path, Path]:
    out, work = tmp / name / "dist", tmp / name / ".glan"
    code = main(["build", "--disciplines", DISCIPLINES, "--out", str(out), "--work-dir", str(work), *flags])
    return code, out, work


def rows(out: Path, config: str) -> list[dict]:
    splits = ["train", "test"] if config == "instructions" else ["train"]
    return [row for split in splits for row in load_dataset(str(out), config, split=split).to_list()]


def report(work: Path) -> dict:
    data = json.loads((work / "run_report.json").read_text())
    by_stage = {}
    for usage in data["usage"]:
        by_stage.setdefault(usage["stage"], {}).update(usage)
    return {**data, "stages": by_stage}


@pytest.fixture(scope="module")
def faulted(tmp_path_factory):
    """One build with 20% of responses faulted, every kind mixed, behind an API key. The faults that break JSON
    hit structured requests only, a few of the whole build: the first arrivals (subject samples, the first
    requests of every unit) get one each."""
    tmp = tmp_path_factory.mktemp("faults")
    taxonomy = taxonomy_with(tmp, faulty={"limits": {"timeout_s": 1.0, "concurrency": 16}})
    key = "sk-test-" + "k3y" * 12
    json_faults = {"0": "truncated", "1": "invalid_json", "2": "schema_invalid"}
    with start_openai_server(fault_rate=0.2, fault_seed=7, faults_at=json_faults, retry_after_s=0.4, hang_s=5,
                             require_api_key=key) as server:
        mp = pytest.MonkeyPatch()
        mp.setenv("OPENAI_API_KEY", key)
        try:
            code, out, work = build(tmp, "--taxonomy", str(taxonomy), "--preset", "faulty", "--model", "test-model",
                                    "--base-url", server.base_url, "--max-failure-rate", "0.5")
        finally:
            mp.undo()
        yield {"code": code, "out": out, "work": work, "stats": server.stats(), "key": key, "tmp": tmp,
               "url": server.base_url}


def test_faulted_build_ends_and_every_fault_kind_was_served(faulted):
    assert faulted["code"] == 0
    assert set(faulted["stats"]["faults"]) == set(FAULT_KINDS)
    # 20% of arrivals are faulted; the bound leaves room for the random draw.
    assert sum(faulted["stats"]["faults"].values()) >= 0.12 * faulted["stats"]["requests"]


def test_succeeded_plus_failed_is_exactly_what_was_planned(faulted):
    out, stages = faulted["out"], report(faulted["work"])["stages"]
    subjects, syllabi, questions = rows(out, "subjects"), rows(out, "syllabi"), rows(out, "questions")
    planned = {"subjects": len(DISCIPLINES.split(",")) * SMOKE["subjects"]["samples"],
               "syllabus": len(subjects),
               "questions": len(syllabi) * SMOKE["questions"]["per_subject"],
               "answers": len(questions)}
    for stage, count in planned.items():
        usage = stages[stage]
        assert (usage["succeeded"] + usage["failed"], usage["skipped"]) == (count, 0), stage
    assert len(syllabi) == planned["syllabus"] - stages["syllabus"]["failed"]
    assert len(rows(out, "instructions")) == planned["answers"] - stages["answers"]["failed"]


def test_no_faulted_output_becomes_a_row(faulted):
    for row in rows(faulted["out"], "instructions"):
        assert SERVER_ANSWER.fullmatch(row["messages"][1]["content"]), row["messages"][1]["content"]
    for row in rows(faulted["out"], "questions"):
        assert SERVER_QUESTION.fullmatch(row["question"]), row["question"]


def test_429s_slowed_the_client(faulted):
    data = report(faulted["work"])
    assert data["lowest_concurrency"][faulted["url"]] < 16
    assert data["retry_after_waits_s"] and set(data["retry_after_waits_s"]) == {0.4}


def test_the_api_key_is_nowhere_on_disk(faulted, capsys):
    key = faulted["key"].encode()
    files = [path for path in faulted["tmp"].rglob("*") if path.is_file()]
    assert len(files) > 10
    assert [path for path in files if key in path.read_bytes()] == []
    assert faulted["key"] not in capsys.readouterr().err


def test_401_fails_fast_with_the_endpoints_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with start_openai_server(require_api_key="sk-right") as server:
        code, _, _ = build(tmp_path, "--preset", "smoke", "--model", "test-model", "--base-url", server.base_url,
                           "--concurrency", "2")
        log = server.log()
    err = capsys.readouterr().err
    assert code == 2
    assert f"glan: {server.base_url}: HTTP 401: Incorrect API key provided." in err
    assert "check the API key in $OPENAI_API_KEY" in err
    assert 1 <= len(log) <= 2 and all(record["status"] == 401 for record in log)
    assert "sk-wrong" not in err


def test_max_requests_stops_cleanly_after_exactly_n(tmp_path, capsys):
    with start_openai_server() as server:
        code, out, work = build(tmp_path, "--preset", "smoke", "--model", "test-model", "--base-url", server.base_url,
                                "--max-requests", "15")
        assert server.stats()["requests"] == 15
    assert code == 1
    err = capsys.readouterr().err
    assert "stopped early: --max-requests 15 reached" in err
    incomplete = out.with_name("dist.incomplete")
    assert (f"glan: the build is incomplete: --max-requests 15 reached. What was complete is in {incomplete}; "
            f"{out} was left as it was.") in err
    assert not out.exists()
    assert len(rows(incomplete, "subjects")) > 0 and (incomplete / "README.md").exists()
    assert report(work)["stop_reason"] == "--max-requests 15 reached"


@pytest.mark.parametrize("concurrency", ["1", "64"])
def test_max_cost_stops_cleanly_within_the_budget_with_prices_from_the_flag(tmp_path, capsys, concurrency):
    """A request is sent only while what was spent, plus the worst cost of the requests in flight and of this one
    (its prompt and all of its max_tokens), stays within the budget: many requests in flight never overshoot."""
    with start_openai_server() as server:
        code, out, work = build(tmp_path, "--preset", "smoke", "--model", "test-model", "--base-url", server.base_url,
                                "--price", "test-model=10,10", "--max-cost", "0.05", "--concurrency", concurrency)
        sent = server.stats()["requests"]
    data = report(work)
    spent = sum(usage["cost"] for usage in data["usage"])
    tokens = sum(usage["prompt_tokens"] + usage["completion_tokens"] for usage in data["usage"])
    assert code == 1 and data["stop_reason"].startswith("--max-cost 0.05 USD reached")
    assert spent == pytest.approx(tokens * 10 / 1e6)  # the --price flag's price
    assert 0 < spent <= 0.05 and sent == sum(usage["requests"] for usage in data["usage"])
    assert "stopped early: --max-cost 0.05 USD reached" in capsys.readouterr().err


def test_stages_name_their_own_models_and_spread_over_several_endpoints(tmp_path):
    models = ["subject-model", "syllabus-model", "question-model", "answer-model"]
    with start_openai_server(models=models) as first, start_openai_server(models=models) as second:
        urls = [first.base_url, second.base_url]
        taxonomy = taxonomy_with(tmp_path, spread={
            "subjects": {**SMOKE["subjects"], "model": "subject-model", "base_urls": urls},
            "syllabus": {**SMOKE["syllabus"], "model": "syllabus-model", "base_urls": urls[:1]},
            "questions": {**SMOKE["questions"], "model": "question-model", "base_urls": urls},
            "answers": {"model": "answer-model", "base_urls": urls},
        })
        code, out, work = build(tmp_path, "--taxonomy", str(taxonomy), "--preset", "spread")
        counts = [first.stats()["requests"], second.stats()["requests"]]
    stages = report(work)["stages"]
    assert code == 0
    assert {stage: usage["model"] for stage, usage in stages.items()} == {
        "subjects": "subject-model", "syllabus": "syllabus-model", "questions": "question-model",
        "answers": "answer-model"}
    spread = stages["subjects"]["requests"] + stages["questions"]["requests"] + stages["answers"]["requests"]
    # Round-robin: the second endpoint gets half of the spread stages' requests, give or take one per stage.
    assert abs(counts[1] - spread / 2) <= 3
    assert counts[0] + counts[1] == sum(usage["requests"] for usage in stages.values())


def test_a_second_build_on_the_same_work_dir_is_refused(tmp_path, capsys):
    work = tmp_path / "run" / ".glan"
    with exclusive(work):
        code, _, _ = build(tmp_path, "--preset", "smoke", "--model", "test-model", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2
    assert f"glan: {work}: another glan build (pid " in capsys.readouterr().err
