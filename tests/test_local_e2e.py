"""The embedded default end to end: `glan build` with no endpoint builds the shipped taxonomy's demo preset on
the real default model (one build, shared by the tests below), says everywhere that its rows are demo data,
stays under the failure bounds of docs/embedded_models.md, and a rerun calls the model zero times; then a
build killed mid-run leaves no server behind."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset

from glan.llm.local_models import DEFAULT_LOCAL_MODEL, LOCAL_MODELS, demo_notice
from glan.stages import CONFIGS
from tests.benchmarks.embedded_models import failed_items, invalid_responses, readability
from tests.cached import responses
from tests.helpers import wait_until
from tests.test_local import _listening_ports

pytest.importorskip("llama_cpp", reason="needs the local extra: pip install -e '.[local]'")

REPO = Path(__file__).resolve().parents[1]
DEFAULT = LOCAL_MODELS[DEFAULT_LOCAL_MODEL]
# The bounds docs/embedded_models.md states. Per stage: at most 10% of the items fail validation after every
# attempt, and at most a quarter of the texts are unreadable (not prose, or a copy of a prompt example).
# Gemma 3 270M base with the prompts of glan 0.1 misses the second (answers: 2 of 6 unreadable).
MAX_FAILED_ITEMS = 0.10
MAX_UNREADABLE = 0.25


def glan(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([sys.executable, "-m", "glan.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)


def requests_made(work: Path) -> int:
    report = json.loads((work / "run_report.json").read_text())
    return sum(usage["requests"] for usage in report["usage"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The README's `glan build`, in a copy of the repository's taxonomy and prompts."""
    root = tmp_path_factory.mktemp("demo")
    shutil.copy(REPO / "taxonomy.yaml", root / "taxonomy.yaml")
    shutil.copytree(REPO / "prompts", root / "prompts")
    return root, glan("build", cwd=root)


def test_the_demo_build_says_it_is_demo_data_in_the_terminal_show_and_card(demo):
    root, build = demo
    assert build.returncode == 0, build.stderr
    notice = demo_notice(DEFAULT)
    assert f"glan: no endpoint configured: running the demo preset on the embedded {DEFAULT.label} " \
           f"(llama.cpp at http://127.0.0.1:" in build.stderr
    assert f"glan: {notice}\n" in build.stderr
    shown = glan("show", "dist", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f'{notice}\n\nload_dataset("dist", "instructions"): ')
    assert f"> **{notice}**" in (root / "dist" / "README.md").read_text()


def test_the_demo_build_fills_every_config_of_both_disciplines_with_consistent_lineage(demo):
    root, _ = demo
    rows = {config: load_dataset(str(root / "dist"), config, split="train").to_list() for config in CONFIGS}
    assert all(rows[config] for config in CONFIGS), {config: len(rows[config]) for config in CONFIGS}
    preset = yaml.safe_load((REPO / "taxonomy.yaml").read_text())["presets"]["demo"]
    assert {row["discipline_id"] for row in rows["questions"]} == set(preset["discipline_ids"])
    subject_ids = {row["subject_id"] for row in rows["subjects"]}
    question_ids = {row["question_id"] for row in rows["questions"]}
    assert all(row["subject_id"] in subject_ids for row in rows["syllabi"] + rows["questions"] + rows["instructions"])
    assert all(row["question_id"] in question_ids for row in rows["instructions"])
    assert {row["model"] for config in CONFIGS[1:] for row in rows[config]} == {DEFAULT.alias}


def test_the_default_models_failures_per_stage_are_under_the_bounds(demo):
    root, _ = demo
    failed, invalid, unreadable = failed_items(root / ".glan"), invalid_responses(root), readability(root / "dist")
    for stage, (count, items) in failed.items():
        assert items and count / items <= MAX_FAILED_ITEMS, (stage, failed, invalid)
    for stage, (count, texts) in unreadable.items():
        assert texts and count / texts <= MAX_UNREADABLE, (stage, unreadable)


def test_the_embedded_model_writes_questions_and_answers_as_json_under_its_grammar(demo):
    """A real endpoint gets questions and answers as free text; the 135M model gets their JSON form, whose grammar
    lets it stop (docs/embedded_models.md)."""
    root, _ = demo
    replies = {stage: [text for stage_, text in responses(root / ".glan", "stage, text") if stage_ == stage]
               for stage in ("questions", "answers")}
    for stage, field in (("questions", "question"), ("answers", "answer")):
        assert replies[stage] and all(list(json.loads(text, strict=False)) == [field] for text in replies[stage])


def test_a_rerun_of_the_demo_calls_the_model_zero_times(demo):
    root, _ = demo
    assert requests_made(root / ".glan") > 0
    again = glan("build", cwd=root)
    assert again.returncode == 0, again.stderr
    assert requests_made(root / ".glan") == 0


def _llama_servers() -> dict[int, int]:
    """pid -> parent pid of every llama.cpp server process on the machine."""
    servers = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"llama_cpp.server" in (entry / "cmdline").read_bytes():
                servers[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    return servers


def test_a_killed_build_leaves_no_llama_server_behind(tmp_path):
    shutil.copy(REPO / "taxonomy.yaml", tmp_path / "taxonomy.yaml")
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    build = subprocess.Popen([sys.executable, "-m", "glan.cli", "build"],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours = wait_until(lambda: [pid for pid, parent in _llama_servers().items() if parent == build.pid],
                      "the build to start its llama.cpp server", process=build)
    port = int(Path(f"/proc/{ours[0]}/cmdline").read_bytes().split(b"\0--port\0")[1].split(b"\0")[0])
    # Mid-run: the model is loaded and the build is sending to it.
    wait_until(lambda: port in _listening_ports(), "the build's server to listen", process=build)
    build.send_signal(signal.SIGKILL)
    build.wait()
    wait_until(lambda: not set(ours) & set(_llama_servers()), f"llama.cpp server {ours} to die with its build")
