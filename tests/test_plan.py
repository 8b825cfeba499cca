"""The plan (glan/plan.py) decides the whole run once: the taxonomy is read once per command, and where each stage's
requests go follows one rule, the one the help and the README state."""

import re
from pathlib import Path

import pytest

from glan import plan
from glan.cli import _parser
from glan.config.run import ENDPOINT_PRECEDENCE, RunSettings
from glan.llm.local_models import LOCAL_MODELS
from glan.llm.routes import OPENAI_URL
from tests.helpers import REPO, glan, project


@pytest.fixture
def reads(monkeypatch):
    """The taxonomy files the plan reads, in order."""
    read = []
    load = plan.load_taxonomy

    def counted(path):
        read.append(str(path))
        return load(path)

    monkeypatch.setattr(plan, "load_taxonomy", counted)
    return read


def test_a_build_reads_the_taxonomy_once(openai_server, tmp_path, reads):
    taxonomy = project(tmp_path / "project")
    code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "smoke", "--disciplines", "Linear Algebra",
                        "--model", "test-model", "--base-url", openai_server.base_url, "--work-dir",
                        tmp_path / "work", "--out", tmp_path / "dist")
    assert code == 0, err
    assert reads == [str(taxonomy)]


def test_an_estimate_on_the_embedded_default_reads_the_taxonomy_once_and_prices_its_model(tmp_path, reads):
    """No endpoint: the plan puts the run on the embedded model and its demo preset (no server is started to
    estimate), reading the taxonomy once for that decision and the run."""
    taxonomy = project(tmp_path / "project")
    code, out, err = glan("estimate", "--taxonomy", taxonomy, "--work-dir", tmp_path / "work")
    assert code == 0, err
    assert reads == [str(taxonomy)]
    alias = LOCAL_MODELS["smollm2-135m"].alias
    assert [line.split()[:3] for line in out.splitlines()[1:5]] == [
        ["subjects", alias, "2"], ["syllabus", alias, "3"], ["questions", alias, "6"], ["answers", alias, "6"]]


def routes(tmp_path, monkeypatch, env: dict, stage_urls: list[str] | None = None, **asked) -> dict[str, list[str]]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    taxonomy = project(tmp_path / "project", mine={"subjects": {"base_urls": stage_urls}} if stage_urls else {})
    run = plan.resolve(RunSettings(taxonomy=str(taxonomy), preset="mine", model="m", local_model="smollm2-135m",
                                   **asked))
    assert (run.embedded is not None) == (run.stages["answers"].route.endpoints[0].base_url ==
                                          plan.LOCAL_SERVER_PENDING)
    return {name: [endpoint.base_url for endpoint in stage.route.endpoints] for name, stage in run.stages.items()}


def test_endpoints_follow_the_one_rule(tmp_path, monkeypatch):
    flag, stage, env = "http://flag:1/v1", "http://stage:2/v1", "http://env:3/v1"
    # --base-url, over everything
    assert set(map(tuple, routes(tmp_path / "a", monkeypatch, {"OPENAI_BASE_URL": env}, [stage],
                                 base_url=flag).values())) == {(flag,)}
    # then the stage's base_urls in the taxonomy, over OPENAI_BASE_URL (which the other stages take)
    assert routes(tmp_path / "b", monkeypatch, {"OPENAI_BASE_URL": env}, [stage]) == {
        "subjects": [stage], "syllabus": [env], "questions": [env], "answers": [env]}
    monkeypatch.delenv("OPENAI_BASE_URL")
    # then OpenAI, with OPENAI_API_KEY (or with a stage of its own elsewhere)
    assert routes(tmp_path / "c", monkeypatch, {"OPENAI_API_KEY": "sk-test"})["answers"] == [OPENAI_URL]
    monkeypatch.delenv("OPENAI_API_KEY")
    assert routes(tmp_path / "d", monkeypatch, {}, [stage])["answers"] == [OPENAI_URL]
    # else the embedded model, whose server's address is known once it has started
    embedded = routes(tmp_path / "e", monkeypatch, {})
    assert set(map(tuple, embedded.values())) == {(plan.LOCAL_SERVER_PENDING,)}


def test_the_help_and_the_readme_state_the_rule_the_plan_follows():
    build = _parser(["build"])._subparsers._group_actions[0].choices["build"]
    [base_url] = [action for action in build._actions if "--base-url" in action.option_strings]
    assert ENDPOINT_PRECEDENCE in base_url.help
    readme = " ".join(Path(REPO / "README.md").read_text().split())
    assert re.sub(r"\s+", " ", ENDPOINT_PRECEDENCE) in readme.replace("`", "")
