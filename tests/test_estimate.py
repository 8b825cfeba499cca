"""`glan estimate` prices a build without calling an LLM, within 10% of the requests the build then makes."""

import json
import re
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from glan.cli import main
from glan.config.run import RunSettings
from glan.estimate import estimate
from glan.llm.cache import Cache, Response
from glan.plan import resolve
from tests.helpers import REPO, project
from tests.servers import start_openai_server

DISCIPLINES = ("Organic Chemistry", "Linear Algebra", "Genetics", "Geology", "Microeconomics", "Ecology")


def run_settings(server, tmp, name) -> RunSettings:
    return RunSettings(preset="smoke", disciplines=DISCIPLINES, model="test-model", base_url=server.base_url,
                       work_dir=str(tmp / name / ".glan"), progress=False)


def build(run: RunSettings, tmp, *flags) -> int:
    return main(["build", "--preset", "smoke", "--disciplines", ",".join(DISCIPLINES), "--model", "test-model",
                 "--base-url", run.base_url, "--work-dir", run.work_dir, "--out", str(tmp / "dist"), *flags])


def test_estimate_is_within_ten_percent_of_the_build_cold_and_exact_where_cached(tmp_path, capsys):
    with start_openai_server() as server:
        cold = run_settings(server, tmp_path, "cold")
        estimated = {e.stage: e.to_send for e in estimate(resolve(cold), ["instructions"])}
        assert server.stats()["requests"] == 0
        assert build(cold, tmp_path) == 0
        made = server.stats()["requests"]
        assert abs(sum(estimated.values()) - made) <= 0.1 * made
        assert estimated["subjects"] == len(DISCIPLINES) * 2

        # With the subjects cached, the rest follows from their actual count, not from the settings.
        warm = run_settings(server, tmp_path, "warm")
        assert build(warm, tmp_path / "warm", "--configs", "subjects") == 0
        server.reset()
        estimates = estimate(resolve(warm), ["instructions"])
        assert build(warm, tmp_path / "warm") == 0
        made = server.stats()["requests"]
        assert {e.stage: e.cached for e in estimates}["subjects"] == len(DISCIPLINES) * 2
        assert abs(sum(e.to_send for e in estimates) - made) <= 0.1 * made
        assert round({e.stage: e.requests for e in estimates}["syllabus"]) == \
            {e.stage: e.requests for e in estimate(resolve(replace(warm, work_dir=str(tmp_path / "cold" / ".glan"))),
                                                    ["instructions"])}["syllabus"]
        assert server.stats()["requests"] == made  # estimating sent nothing


def test_estimate_command_prints_requests_tokens_and_cost_per_stage(tmp_path, capsys):
    # The shipped paper preset, with smoke's quality block: no benchmark to load from the Hub.
    paper = yaml.safe_load((REPO / "taxonomy.yaml").read_text())["presets"]["paper"]
    taxonomy = project(tmp_path / "project", paper=paper)
    code = main(["estimate", "--taxonomy", str(taxonomy), "--preset", "paper", "--disciplines", "Organic Chemistry",
                 "--base-url", "http://127.0.0.1:9/v1", "--work-dir", str(tmp_path / ".glan"), "--price",
                 "gpt-4o=2.5,10,1.25"])
    out = capsys.readouterr().out
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:6]}
    assert lines["subjects"][1:3] == ["gpt-4o", "10"]
    assert set(lines) == {"subjects", "syllabus", "questions", "answers", "total"}
    costs = next(line for line in out.splitlines() if line.startswith("cost USD: "))
    cached, uncached, batch = (float(word) for word in re.findall(r"(\d+\.\d{4})", costs))
    share = int(re.search(r"\((\d+)% of input tokens cached\)", costs)[1])
    # The questions send a subject's syllabus 300 times: most input is a prefix the endpoint has seen.
    assert share > 50 and cached < uncached
    assert batch == pytest.approx(cached / 2, abs=1e-4)


def test_the_estimate_of_a_superset_agrees_with_the_build_and_names_the_work_dir_it_read(tmp_path, capsys):
    """Issue 27: an estimate read another work dir than the build's, and said 2,226 requests where the build sent
    106. The estimate reads the cache and units of its --work-dir: with the build's, a superset of a partly built
    selection agrees with what the build sends; with another, it says it found nothing there."""
    def flags(server, work, disciplines):
        return ["--preset", "smoke", "--disciplines", ",".join(disciplines), "--model", "test-model", "--base-url",
                server.base_url, "--work-dir", str(tmp_path / work)]

    with start_openai_server() as server:
        assert main(["build", *flags(server, "built", DISCIPLINES[:2]), "--out", str(tmp_path / "dist")]) == 0
        sent_before = server.stats()["requests"]
        capsys.readouterr()
        assert main(["estimate", *flags(server, "built", DISCIPLINES[:4])]) == 0
        read = capsys.readouterr().out
        assert main(["estimate", *flags(server, "other", DISCIPLINES[:4]), "--json"]) == 0
        elsewhere = json.loads(capsys.readouterr().out)
        assert main(["estimate", *flags(server, "other", DISCIPLINES[:4])]) == 0
        other = capsys.readouterr().out
        server.reset()
        assert main(["build", *flags(server, "built", DISCIPLINES[:4]), "--out", str(tmp_path / "dist")]) == 0
        sent = server.stats()["requests"]

    total = next(line.split() for line in read.splitlines() if line.startswith("total "))
    cached, to_send = (int(figure.replace(",", "")) for figure in total[2:4])
    assert cached == sent_before
    assert abs(to_send - sent) <= 0.1 * sent
    assert (f"cached: {sent_before:,} responses in {tmp_path / 'built'}; a build with another --work-dir sends what "
            "that one lacks.") in read.splitlines()
    assert (f"cached: 0 responses in {tmp_path / 'other'} (none there: every request counts as to send); a build "
            "with another --work-dir sends what that one lacks.") in other.splitlines()
    assert elsewhere["work_dir"] == str(tmp_path / "other")
    assert [stage["cached"] for stage in elsewhere["stages"]] == [0, 0, 0, 0]
    assert not (tmp_path / "other").exists()  # estimating wrote nothing


def test_the_embedded_model_costs_nothing_and_is_not_called_unpriced(tmp_path, monkeypatch, capsys):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["estimate", "--taxonomy", str(REPO / "taxonomy.yaml"), "--work-dir", str(tmp_path / ".glan")]) == 0
    out = capsys.readouterr().out
    assert "unpriced" not in out
    assert "\nto pay: 0.0000 USD for the 17 requests not cached\n" in out  # the demo preset: 2 disciplines


def test_the_estimate_reads_each_cache_file_once_and_a_glan_0_2_file_too(tmp_path, monkeypatch):
    """The mean tokens of a stage are those of its responses in every cache file of the work dir: each file is
    opened once for all stages (it was once per stage, each a scan of the whole file), and a unit cache
    of glan 0.2 (no cached_tokens column, opened read only) counts no cached tokens."""
    caches = tmp_path / ".glan" / "cache"
    caches.mkdir(parents=True)
    old = sqlite3.connect(caches / "old.sqlite")
    old.executescript(
        "CREATE TABLE responses (key TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, "
        "text TEXT NOT NULL, finish_reason TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
        "created REAL NOT NULL);"
        "CREATE TABLE endpoint_modes (endpoint TEXT PRIMARY KEY, mode TEXT NOT NULL);"
        "INSERT INTO responses VALUES ('a', 'subjects', 'm', '[]', 'stop', 10, 4, 0);"
        "INSERT INTO responses VALUES ('b', 'subjects', 'm', '[]', 'stop', 10, 4, 0);"
        "INSERT INTO responses VALUES ('c', 'syllabus', 'm', '{}', 'stop', 7, 9, 0);"
    )
    old.close()
    new = Cache(caches / "new.sqlite")
    new.put("d", "subjects", "m", Response("[]", "stop", 30, 8, 20))
    new.close()
    opened: Counter[str] = Counter()
    init = Cache.__init__

    def counting(self, path, *args, **kwargs):
        opened[Path(path).name] += 1
        init(self, path, *args, **kwargs)

    monkeypatch.setattr(Cache, "__init__", counting)
    settings = RunSettings(preset="smoke", disciplines=DISCIPLINES, model="test-model",
                           base_url="http://127.0.0.1:9/v1", work_dir=str(tmp_path / ".glan"), progress=False)
    stages = {e.stage: e for e in estimate(resolve(settings), ["instructions"])}

    assert opened["old.sqlite"] == opened["new.sqlite"] == 1
    subjects = stages["subjects"]
    assert subjects.observed and subjects.requests == len(DISCIPLINES) * 2
    # 3 responses: 50 prompt tokens, 16 completion tokens, 20 of the prompt tokens cached.
    assert subjects.prompt_tokens == pytest.approx(subjects.requests * 50 / 3)
    assert subjects.completion_tokens == pytest.approx(subjects.requests * 16 / 3)
    assert subjects.cached_tokens == pytest.approx(subjects.requests * 20 / 3)
    assert stages["syllabus"].observed
    assert stages["syllabus"].completion_tokens == pytest.approx(stages["syllabus"].requests * 9)
    assert not stages["questions"].observed
