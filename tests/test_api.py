"""The library: glan.build and glan.estimate from Python and from inside a running event loop (as in Jupyter), their
async forms, exceptions worded for the caller, list-or-string arguments, the Glan builder in a notebook, and
docs/api.md's worked example run as it stands."""

from __future__ import annotations

import asyncio
import re

import pytest
import yaml

import glan
from tests.helpers import REPO, SMOKE

ONE = "Organic Chemistry"  # one string: one discipline


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder as the current directory: the shipped taxonomy with no benchmark to fetch from the Hub."""
    data = yaml.safe_load((REPO / "taxonomy.yaml").read_text())
    data["generation"]["quality"]["decontamination"]["benchmarks"] = []
    (tmp_path / "taxonomy.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "prompts").symlink_to(REPO / "prompts")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings(server) -> dict:
    return {"preset": "smoke", "disciplines": ONE, "model": "test-model", "base_url": server.base_url,
            "progress": False}


def test_build_inside_a_running_event_loop_returns_a_build_result(openai_server, project):
    async def cell():  # a Jupyter cell: the loop runs while the synchronous call is made
        return glan.build(out="dist", configs="instructions", **settings(openai_server))

    result = asyncio.run(cell())
    assert isinstance(result, glan.BuildResult)
    assert result.complete and result.stop_reason is None and result.failures == 0
    assert result.folder == project / "dist"
    assert set(result.rows) == {"instructions"}
    assert result.pairs["train"] > 0 and result.pairs["test"] == SMOKE["quality"]["test_split"]["per_discipline"]
    assert sum(usage.requests for usage in result.usage.values()) == openai_server.stats()["requests"]
    assert result.cost == 0.0  # test-model has no price


def test_the_async_forms_leave_the_callers_loop_running(openai_server, project):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        estimate = await glan.aestimate(**settings(openai_server))
        result = await glan.abuild(out="dist", **settings(openai_server))
        ticking.cancel()
        return estimate, result, ticks

    estimate, result, ticks = asyncio.run(main())
    assert ticks > 1  # the caller's loop ran while glan worked
    assert isinstance(estimate, glan.Estimate) and estimate.disciplines == 1
    assert result.complete and set(result.rows) == {"taxonomy", "subjects", "syllabi", "questions", "instructions"}
    # smoke: 2 subject samples of 2 or 3 subjects, 4 questions each, 1 held out. The estimate is the expectation; one
    # discipline's build lands anywhere in the range (the server picks each count), so that is what is asserted.
    assert estimate.train_pairs == 2 * 2.5 * 4 - 1
    assert 2 * 2 * 4 - 1 <= result.pairs["train"] <= 2 * 3 * 4 - 1


def test_errors_name_keyword_arguments_not_flags(openai_server, project):
    with pytest.raises(glan.UserError) as error:
        glan.estimate(**{**settings(openai_server), "disciplines": "Calculuz"})
    assert str(error.value).startswith('taxonomy.yaml: disciplines=: no discipline named "Calculuz". Did you mean "Calculus"?')
    with pytest.raises(glan.UserError, match=r"no model for the subjects stage\. Pass model=, or set it"):
        glan.estimate(base_url=openai_server.base_url)
    with pytest.raises(glan.UserError, match=r"unknown config 'instruction'; choose from taxonomy, subjects"):
        glan.build(configs="instruction", **settings(openai_server))
    with pytest.raises(TypeError, match=r"unknown setting 'discipline'; did you mean 'disciplines'\?"):
        glan.estimate(discipline=ONE)
    with pytest.raises(glan.UserError, match=r"^overrides=: questions\.per_subject: 0 is too small\. It must be at least"):
        glan.estimate(overrides={"questions.per_subject": 0}, **settings(openai_server))
    assert openai_server.stats()["requests"] == 0


def test_prices_as_docs_api_md_gives_them_price_cached_input_as_input(openai_server, project):
    """prices={model: (input, output)}: no cached-input price named, so cached input costs the input price."""
    two = glan.estimate(**settings(openai_server), prices={"test-model": (1000.0, 2000.0)})
    three = glan.estimate(**settings(openai_server), prices={"test-model": (1000.0, 2000.0, 1000.0)})
    assert not two.unpriced and two.cost > 0
    assert [stage.cost for stage in two] == [stage.cost for stage in three]


def test_a_large_build_needs_yes_or_a_confirmation(openai_server, project):
    small = {**settings(openai_server), "overrides": {"limits.confirm_above_requests": 10}}
    with pytest.raises(glan.ConfirmationNeeded) as refused:
        glan.build(**small)
    assert re.match(r"not started: it would send about 47 requests, more than limits\.confirm_above_requests \(10\)"
                    r" \(the estimate is above\)\. Pass yes=True to start it, pairs=N to size it", str(refused.value))
    assert refused.value.estimate.to_send == 47
    asked = []
    with pytest.raises(glan.ConfirmationNeeded, match="not started: the build was not confirmed"):
        glan.build(**small, confirm=lambda estimate, reason: asked.append(reason) or False)
    assert openai_server.log() == []
    assert glan.build(**small, confirm=lambda estimate, reason: asked.append(reason) or True).complete
    assert len(asked) == 2 and openai_server.stats()["requests"] > 0


def test_glan_the_datasets_builder_works_in_a_notebook(openai_server, project):
    from glan_dataset import Glan

    assert "download_and_prepare" in Glan.__doc__

    async def cell():
        builder = Glan(config_name="questions", taxonomy="taxonomy.yaml", preset="smoke", disciplines=(ONE,),
                       model="test-model", base_url=openai_server.base_url, work_dir=".glan", progress=False,
                       cache_dir=str(project / "hf"))
        builder.download_and_prepare()
        return builder.as_dataset("train")

    questions = asyncio.run(cell())
    assert len(questions) > 0 and set(questions["discipline"]) == {ONE}


def test_glan_the_datasets_builder_reads_its_keywords_as_glan_build_does(openai_server, project):
    from glan_dataset import Glan

    builder = Glan(config_name="questions", taxonomy="taxonomy.yaml", preset="smoke", disciplines=ONE,
                   model="test-model", base_url=openai_server.base_url, prices={"test-model": (1.0, 2.0)},
                   cache_dir=str(project / "hf"))
    run = builder._units.run
    assert [ref.discipline for ref in run.disciplines] == [ONE]  # one string: one discipline, not its letters
    assert (run.prices["test-model"].input, run.prices["test-model"].cached_input) == (1.0, 1.0)
    assert run.embedded is None and run.settings.progress is True  # the builder's own defaults
    with pytest.raises(glan.UserError) as error:
        Glan(config_name="questions", taxonomy="taxonomy.yaml", disciplines="Calculuz", model="test-model",
             base_url=openai_server.base_url, cache_dir=str(project / "hf"))
    assert str(error.value).startswith('taxonomy.yaml: disciplines=: no discipline named "Calculuz".')


def test_the_worked_example_of_docs_api_md_runs(openai_server, project, monkeypatch, capsys):
    openai_server.configure(models=["gpt-4o-mini"])
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    example = re.search(r"## A worked example.*?```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)
    exec(compile(example.group(1), "docs/api.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"^about [\d,]+ train pairs from \d+ disciplines, [\d,]+ requests, up to [\d.]+ USD$", out, re.M)
    assert "not started: it would send about" in out and "Pass yes=True" in out
    assert 'disciplines=: no discipline named "Calculuz". Did you mean "Calculus"?' in out
    assert (project / "dist" / "glan_manifest.json").is_file()


def test_glan_the_datasets_builder_asks_no_paper_sized_run_by_accident(openai_server, project):
    from glan_dataset import Glan

    builder = Glan(config_name="instructions", taxonomy="taxonomy.yaml", model="test-model",
                   base_url=openai_server.base_url, progress=False, cache_dir=str(project / "hf"))
    with pytest.raises(glan.ConfirmationNeeded) as refused:
        builder.download_and_prepare()
    assert re.fullmatch(r"not started: it would send about [\d,]+ requests, more than limits\.confirm_above_requests "
                        r"\(10,000\) \(the estimate is above\)\. Pass pairs=N to size it to about N train pairs, or "
                        r"raise generation\.limits\.confirm_above_requests and confirm_above_usd\.", str(refused.value))
    assert openai_server.log() == []


INTERRUPTED_CELL = """
import asyncio, os, signal, threading
from glan.llm import loop

# A kernel handles SIGINT itself; a process started from a background job (`pytest &` in a script) inherits it
# ignored, and an ignored SIGINT is never raised (the interrupt below would be lost and the cell would wait for good).
signal.signal(signal.SIGINT, signal.default_int_handler)
started, cancelled = threading.Event(), []

async def build():  # stands for a build's coroutine, waiting on its endpoint
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.append(True)
        raise

def interrupt():  # what Jupyter's "interrupt the kernel" does
    started.wait()
    os.kill(os.getpid(), signal.SIGINT)

async def cell():
    threading.Thread(target=interrupt).start()
    try:
        loop.run(build())
    except KeyboardInterrupt:
        print("interrupted; the build was cancelled:", cancelled == [True])

asyncio.new_event_loop().run_until_complete(cell())  # a loop with Python's own SIGINT handling, as a kernel has
"""


def test_an_interrupt_in_a_notebook_cancels_the_build_it_waits_for():
    import subprocess
    import sys

    from tests.helpers import PATIENCE_S

    done = subprocess.run([sys.executable, "-c", INTERRUPTED_CELL], capture_output=True, text=True, cwd=REPO,
                          timeout=PATIENCE_S)
    assert (done.returncode, done.stdout) == (0, "interrupted; the build was cancelled: True\n"), done.stderr


def test_a_build_reads_its_benchmarks_once(openai_server, project, monkeypatch):
    """The size check (both its estimates) and the build share one read: each read is a Hub probe, a load_dataset
    per config and seconds of indexing for the shipped seven."""
    from glan import preflight

    reads = []
    read = preflight.check_benchmarks
    monkeypatch.setattr(preflight, "check_benchmarks", lambda run: reads.append(run) or read(run))
    result = glan.build(**settings(openai_server), out="dist", yes=True, overrides={"limits.confirm_above_requests": 1})
    assert result.complete and len(reads) == 1
