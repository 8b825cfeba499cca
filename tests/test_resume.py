"""SIGKILL a running `glan build` three times, at different points, and rerun the same command:
no response the client had received is requested again, and the folder equals an uninterrupted build's.

"Received" is made exact by holding the server's answers (knob `hold`) before each kill and waiting until
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

KILL_AFTER_REQUESTS = (3, 30, 75)  # cumulative server arrivals: during subjects, questions, answers


def command(server, tmp: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "builder.cli", "build", "--preset", "smoke", "--disciplines",
            "Organic Chemistry,Linear Algebra", "--model", "test-model", "--base-url", server.base_url,
            "--concurrency", "4", "--out", str(tmp / name / "dist"), "--work-dir", str(tmp / name / ".glan")]


def parquet_files(folder: Path) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*.parquet"))}


def test_sigkill_three_times_then_resume_equals_an_uninterrupted_build(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    work = tmp_path / "killed" / ".glan"
    stages_hit = set()  # the stage of the last response cached before each kill: three different points
    received = []  # per killed run: the bodies its client had received (and committed) before the kill
    requested = []  # per run: the bodies it asked for
    arrivals = 0
    for threshold in KILL_AFTER_REQUESTS:
        with start_openai_server(latency_ms=60) as server:
            cached_before = len(responses(work, "key"))
            build = subprocess.Popen(command(server, tmp_path, "killed"), cwd=REPO_ROOT, env=env,
                                     stderr=subprocess.DEVNULL)
            wait_until(lambda: arrivals + server.stats()["requests"] >= threshold,
                       f"request {threshold} of the killed builds to reach the server", process=build)
            server.configure(hold=True)
            answered = {record["body_sha256"] for record in server.log() if record["status"] == 200}
            wait_until(lambda: len(responses(work, "key")) >= cached_before + len(answered),
                       f"the client to commit the {len(answered)} answers it received", process=build)
            build.kill()
            build.wait()
            log = server.log()
        arrivals += len(log)
        received.append(answered)
        requested.append({record["body_sha256"] for record in log})
        for path in cache_files(work):
            with sqlite3.connect(path) as database:
                assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        cached = sorted(responses(work, "created, stage"))
        stages_hit.add(cached[-1][1] if cached else "nothing cached yet")
    with start_openai_server(latency_ms=60) as server:
        assert subprocess.run(command(server, tmp_path, "killed"), cwd=REPO_ROOT, env=env,
                              stderr=subprocess.DEVNULL, timeout=PATIENCE_S).returncode == 0
        requested.append({record["body_sha256"] for record in server.log()})
        assert subprocess.run(command(server, tmp_path, "clean"), cwd=REPO_ROOT, env=env,
                              stderr=subprocess.DEVNULL, timeout=PATIENCE_S).returncode == 0
    for kill, bodies in enumerate(received):
        again = bodies & set().union(*requested[kill + 1:])
        assert again == set(), f"received before kill {kill + 1} and requested again"
    assert len(stages_hit) == 3

    clean = parquet_files(tmp_path / "clean" / "dist")
    assert len(clean) == 1 + 2 * 5  # one taxonomy file; per discipline four configs, instructions in two splits
    assert parquet_files(tmp_path / "killed" / "dist") == clean
