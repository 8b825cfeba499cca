"""The embedded default end to end: the real 270M model on a tiny scope, then a kill mid-run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset

from builder.stages import CONFIGS

pytest.importorskip("llama_cpp", reason="needs the local extra: pip install -e '.[local]'")

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "limits": {"concurrency": 1, "timeout_s": 600, "max_attempts": 5, "max_failure_rate": 1.0},
    "subjects": {"samples": 1, "per_sample": {"min": 1, "max": 1}, "max_tokens": 300},
    "syllabus": {"sessions": {"min": 1, "max": 1}, "key_concepts": {"min": 1, "max": 1}, "max_tokens": 300},
    "questions": {"per_subject": 1, "max_chars": 200, "max_tokens": 200},
    "answers": {"max_chars": 200, "max_tokens": 200},
    "quality": {"test_split": {"per_discipline": 0}},
}


def project(root: Path) -> Path:
    shutil.copytree(REPO / "prompts", root / "prompts")
    taxonomy = {"version": "1.0.0", "generation": TINY, "fields": [{"name": "Mathematics", "subfields": [
        {"name": "Elementary Mathematics", "disciplines": [
            {"name": "Elementary Arithmetic", "description": "Counting, addition, subtraction, multiplication and division."}]}]}]}
    (root / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy, sort_keys=False))
    return root / "taxonomy.yaml"


def glan(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)


def requests_made(work: Path) -> int:
    report = json.loads((work / "run_report.json").read_text())
    return sum(usage["requests"] for usage in report["usage"])


def test_the_real_local_model_builds_every_config_and_a_rerun_calls_it_zero_times(tmp_path):
    taxonomy = project(tmp_path)
    first = glan("build", "--taxonomy", str(taxonomy), "--out", "dist", "--work-dir", ".glan", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "glan: using the embedded default: llama.cpp server with gemma-3-270m" in first.stderr
    rows = {config: load_dataset(str(tmp_path / "dist"), config, split="train").to_list() for config in CONFIGS}
    assert all(rows[config] for config in CONFIGS), {config: len(rows[config]) for config in CONFIGS}
    subject_ids = {row["subject_id"] for row in rows["subjects"]}
    question_ids = {row["question_id"] for row in rows["questions"]}
    assert {row["discipline_id"] for config in CONFIGS for row in rows[config]} == {"elementary-arithmetic"}
    assert all(row["subject_id"] in subject_ids for row in rows["syllabi"] + rows["questions"] + rows["instructions"])
    assert all(row["question_id"] in question_ids for row in rows["instructions"])
    assert all(row["messages"][1]["content"] for row in rows["instructions"])
    assert requests_made(tmp_path / ".glan") > 0

    second = glan("build", "--taxonomy", str(taxonomy), "--out", "dist", "--work-dir", ".glan", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert requests_made(tmp_path / ".glan") == 0


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
    taxonomy = project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    build = subprocess.Popen([sys.executable, "-m", "builder.cli", "build", "--taxonomy", str(taxonomy)],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (ours := [pid for pid, parent in _llama_servers().items() if parent == build.pid]):
        assert build.poll() is None and time.monotonic() < deadline, "the build never started its server"
        time.sleep(0.2)
    time.sleep(3)  # mid-run: the server is loading the model or answering
    build.send_signal(signal.SIGKILL)
    build.wait()
    deadline = time.monotonic() + 10
    while set(ours) & set(_llama_servers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not set(ours) & set(_llama_servers())
