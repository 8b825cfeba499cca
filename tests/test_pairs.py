"""Runs sized in pairs: `--pairs N` lands near N train pairs and the estimate says so beforehand; `--set` overrides a
generation setting with the YAML's one-line errors; the estimate writes nothing and says "unpriced"; a build above
limits.confirm_above_* sends nothing until the user says so."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from glan.cli import main
from glan.config.run import RunSettings
from glan.plan import resolve
from glan.sizing import size_for
from tests.helpers import REPO, glan, rows

ONE = ("--disciplines", "Organic Chemistry")


def endpoint(server) -> tuple[str, ...]:
    return ("--model", "test-model", "--base-url", server.base_url)


def estimated_pairs(out: str) -> tuple[float, float]:
    match = re.search(r"^pairs: about ([\d,]+) train and ([\d,]+) test", out, re.M)
    assert match, out
    return float(match.group(1).replace(",", "")), float(match.group(2).replace(",", ""))


def test_pairs_1000_on_the_smoke_settings_lands_within_20_percent_and_the_estimate_said_so(openai_server, tmp_path):
    flags = ("--preset", "smoke", "--pairs", "1000", *endpoint(openai_server), "--work-dir", tmp_path / ".glan")
    code, out, err = glan("estimate", *flags)
    assert code == 0, err
    train, _ = estimated_pairs(out)
    assert 800 <= train <= 1200
    assert openai_server.stats()["requests"] == 0

    code, _, err = glan("build", *flags, "--out", tmp_path / "dist", "--configs", "instructions")
    assert code == 0, err
    built = len(rows(tmp_path / "dist", "instructions"))
    assert 800 <= built <= 1200
    assert abs(built - train) <= 0.2 * train


def test_sizing_keeps_disciplines_and_questions_per_subject_in_proportion():
    smoke = resolve(RunSettings(preset="smoke", model="m", base_url="http://127.0.0.1:9/v1")).generation
    for pairs in (10, 100, 1000, 10_000, 1_000_000):
        size = size_for(smoke, 149, pairs)
        assert abs(size.train_pairs - pairs) <= 0.05 * pairs, (pairs, size)
        # smoke's own 4 questions per subject (below the floor of 5), unless that misses the target (10 pairs)
        assert size.per_subject == (1 if pairs == 10 else 4), (pairs, size)
    assert size_for(smoke, 149, 10_000).disciplines == 149  # breadth first, once the target allows every discipline
    paper = resolve(RunSettings(model="m", base_url="http://127.0.0.1:9/v1", pairs=1000))
    assert paper.generation.quality.test_split.per_discipline < 50  # at most 5% of the pairs are held out
    assert abs(paper.expected_pairs()[0] - 1000) <= 50


def test_set_overrides_a_setting_and_refuses_a_bad_one_in_one_line(openai_server, tmp_path, capsys):
    work = ("--work-dir", tmp_path / ".glan")
    code, out, _ = glan("estimate", "--preset", "smoke", *ONE, *endpoint(openai_server), *work,
                        "--set", "questions.per_subject=7", "--set", "subjects.samples=3")
    assert code == 0
    requests = {line.split()[0]: line.split()[2] for line in out.splitlines()[1:5]}
    assert requests["subjects"] == "3"  # 3 samples of one discipline
    assert requests["questions"] == f"{3 * 2.5 * 7:,.0f}"

    code, _, err = glan("estimate", "--preset", "smoke", *endpoint(openai_server), *work,
                        "--set", "questions.per_subjekt=7")
    assert code == 2
    assert err.splitlines() == ['glan: --set: questions.per_subjekt: unknown key "per_subjekt". Did you mean '
                                '"per_subject"? Allowed keys here: ' + err.split("Allowed keys here: ")[1].strip()]
    code, _, err = glan("build", *endpoint(openai_server), *work, "--set", "limits.concurrency=0")
    assert (code, err) == (2, "glan: --set: limits.concurrency: 0 is too small. It must be at least 1.\n")
    with pytest.raises(SystemExit) as exit:
        main(["build", *endpoint(openai_server), "--set", "questions.per_subject"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == ("glan: argument --set: 'questions.per_subject' is not KEY=VALUE. Write e.g. "
                                       "--set questions.per_subject=10. See `glan build --help`.\n")
    code, _, err = glan("estimate", *endpoint(openai_server), *work, "--pairs", "100", "--set",
                        "questions.per_subject=3")
    assert (code, err) == (2, "glan: --set questions.per_subject: --pairs chooses this setting; give one or the "
                              "other, not both\n")
    assert openai_server.stats()["requests"] == 0
    assert not (tmp_path / ".glan").exists()


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_estimate_writes_nothing_and_says_unpriced(openai_server, tmp_path):
    flags = ("--preset", "smoke", *ONE, *endpoint(openai_server), "--work-dir", tmp_path / ".glan")
    code, out, _ = glan("estimate", *flags)
    assert code == 0
    assert not (tmp_path / ".glan").exists()  # it did not create the work dir it reads
    assert [line.split()[8] for line in out.splitlines()[1:5]] == ["unpriced"] * 4
    assert "not counting test-model (unpriced: give --price MODEL=IN,OUT or generation.prices)" in out

    # Half built: the subjects are cached, the rest is not; then estimating touches no file of the work dir.
    assert glan("build", *flags, "--configs", "subjects", "--out", tmp_path / "dist")[0] == 0
    before = snapshot(tmp_path / ".glan")
    code, out, _ = glan("estimate", *flags, "--price", "test-model=1,2")
    assert code == 0 and "unpriced" not in out
    assert snapshot(tmp_path / ".glan") == before
    assert openai_server.stats()["requests"] == 2  # the two subject samples of the build, none of the estimates


def test_an_unconfirmed_large_build_sends_nothing(openai_server, tmp_path):
    """A plain build with a model and no preset is the paper's size: off a terminal it needs --yes, and is refused
    with the estimate printed and one line saying what to do."""
    code, out, err = glan("build", *endpoint(openai_server), "--work-dir", tmp_path / ".glan", "--out", tmp_path / "d",
                          "--set", "quality.decontamination.benchmarks=[]")  # the shipped seven need the Hub
    assert code == 2
    assert openai_server.log() == []
    assert not (tmp_path / "d").exists() and not (tmp_path / ".glan").exists()
    *estimate, last = err.splitlines()
    assert any(line.startswith("total") for line in estimate)
    assert re.fullmatch(r"glan: not started: it would send about [\d,]+ requests, more than "
                        r"limits\.confirm_above_requests \(10,000\) \(the estimate is above\)\. Pass --yes to start it, "
                        r"--pairs N to size it to about N train pairs, or raise generation\.limits\."
                        r"confirm_above_requests and confirm_above_usd\.", last)


def test_yes_starts_a_build_above_the_threshold_with_the_estimate_printed(openai_server, tmp_path):
    flags = ("--preset", "smoke", *ONE, *endpoint(openai_server), "--work-dir", tmp_path / ".glan",
             "--out", tmp_path / "dist", "--set", "limits.confirm_above_requests=10")
    code, _, err = glan("build", *flags)
    assert code == 2 and "glan: not started: it would send about 47 requests" in err
    assert openai_server.stats()["requests"] == 0
    code, _, err = glan("build", *flags, "--yes")
    assert code == 0
    assert "glan: starting although it would send about 47 requests, more than limits.confirm_above_requests (10)" \
        ": --yes was given." in err
    assert "total" in err and openai_server.stats()["requests"] > 10
    # Cached now: nothing to send, nothing to confirm.
    openai_server.reset()
    code, _, err = glan("build", *flags)
    assert code == 0 and "not started" not in err and openai_server.stats()["requests"] == 0


@pytest.mark.parametrize("answer, started", [("y\n", True), ("\n", False)])
def test_on_a_terminal_glan_asks(openai_server, tmp_path, monkeypatch, answer, started):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    code, _, err = glan("build", "--preset", "smoke", *ONE, *endpoint(openai_server), "--work-dir", tmp_path / "w",
                        "--out", tmp_path / "dist", "--set", "limits.confirm_above_requests=1", "--configs",
                        "subjects")
    assert "Start this build? [y/N]" in err
    assert (code, openai_server.stats()["requests"] > 0) == ((0, True) if started else (2, False))


def test_the_estimate_reads_a_cache_that_is_not_glans_as_damage_and_writes_nothing(openai_server, tmp_path):
    import sqlite3

    cache = tmp_path / ".glan" / "cache" / "organic-chemistry.sqlite"
    cache.parent.mkdir(parents=True)
    sqlite3.connect(cache).execute("CREATE TABLE other (x)").connection.commit()
    before = snapshot(tmp_path / ".glan")
    code, _, err = glan("estimate", "--preset", "smoke", *ONE, *endpoint(openai_server), "--work-dir",
                        tmp_path / ".glan")
    assert code == 2
    assert err.splitlines()[-1].startswith(f"glan: {cache}: the response cache is damaged (no responses table: the "
                                           "file is cut short or is not a glan cache)")
    assert snapshot(tmp_path / ".glan") == before


def test_set_base_urls_names_an_endpoint_and_so_no_embedded_model_runs(monkeypatch):
    """ENDPOINT_PRECEDENCE: a stage's base_urls, however given (taxonomy, preset or --set), is an endpoint."""
    from glan.config.run import RunSettings
    from glan.llm.local_models import DEFAULT_LOCAL_MODEL
    from glan.plan import resolve

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    url = "http://127.0.0.1:9/v1"
    stages = ("subjects", "syllabus", "questions", "answers")
    run = resolve(RunSettings(taxonomy=str(REPO / "taxonomy.yaml"), model="m", local_model=DEFAULT_LOCAL_MODEL,
                              overrides=tuple((f"{stage}.base_urls", [url]) for stage in stages)))
    assert run.embedded is None
    assert {endpoint.base_url for plan in run.stages.values() for endpoint in plan.route.endpoints} == {url}
