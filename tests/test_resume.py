"""SIGKILL a running `glan build` three times, at different points, and rerun the same command:
no response the client had received is requested again, and the folder equals an uninterrupted build's.

"Received" is made exact by holding the server's answers before each kill (knob `hold_from_output`: from the first
request of the next stage on, so each kill lands where it is meant to however busy the machine) and waiting until
the client's cache holds every answer the server had sent: the kill then lands with requests in flight
but never between a response's arrival and its commit. Each run talks to a server of its own, so a
server's log holds that run's requests only (none a killed client had written before it died).
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.cached import cache_files, responses
from tests.helpers import PATIENCE_S, wait_until
from tests.servers import REPO_ROOT, start_openai_server

# A killed run's server holds every answer from the first request for this output on: the kills land as the
# syllabi, the questions and the answers start, the stage before each cached, the stage itself not.
KILL_AT = {"Syllabus": ("subjects", "syllabus"), "question": ("syllabus", "questions"),
           "answer": ("questions", "answers")}


def command(server, tmp: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "glan.cli", "build", "--preset", "smoke", "--disciplines",
            "Organic Chemistry,Linear Algebra", "--model", "test-model", "--base-url", server.base_url,
            "--concurrency", "4", "--out", str(tmp / name / "dist"), "--work-dir", str(tmp / name / ".glan")]


def parquet_files(folder: Path) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*.parquet"))}


def test_sigkill_three_times_then_resume_equals_an_uninterrupted_build(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    work = tmp_path / "killed" / ".glan"
    received = []  # per killed run: the bodies its client had received (and committed) before the kill
    requested = []  # per run: the bodies it asked for
    for output, (done, held) in KILL_AT.items():
        with start_openai_server(latency_ms=60, hold_from_output=output) as server:
            cached_before = len(responses(work, "key"))
            build = subprocess.Popen(command(server, tmp_path, "killed"), cwd=REPO_ROOT, env=env,
                                     stderr=subprocess.DEVNULL)
            wait_until(lambda: server.configure()["hold"], f"the killed build's first {output} request",
                       process=build)
            answered = {record["body_sha256"] for record in server.log() if record["status"] == 200}
            wait_until(lambda: len(responses(work, "key")) >= cached_before + len(answered),
                       f"the client to commit the {len(answered)} answers it received", process=build)
            build.kill()
            build.wait()
            log = server.log()
        received.append(answered)
        requested.append({record["body_sha256"] for record in log})
        for path in cache_files(work):
            with sqlite3.connect(path) as database:
                assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        cached_stages = {stage for (stage,) in responses(work, "stage")}
        assert done in cached_stages and held not in cached_stages, (output, cached_stages)
    with start_openai_server(latency_ms=60) as server:
        assert subprocess.run(command(server, tmp_path, "killed"), cwd=REPO_ROOT, env=env,
                              stderr=subprocess.DEVNULL, timeout=PATIENCE_S).returncode == 0
        requested.append({record["body_sha256"] for record in server.log()})
        assert subprocess.run(command(server, tmp_path, "clean"), cwd=REPO_ROOT, env=env,
                              stderr=subprocess.DEVNULL, timeout=PATIENCE_S).returncode == 0
    for kill, bodies in enumerate(received):
        again = bodies & set().union(*requested[kill + 1:])
        assert again == set(), f"received before kill {kill + 1} and requested again"

    clean = parquet_files(tmp_path / "clean" / "dist")
    assert len(clean) == 1 + 2 * 5  # one taxonomy file; per discipline four configs, instructions in two splits
    assert parquet_files(tmp_path / "killed" / "dist") == clean
