"""SIGKILL a running `glan build` three times, at different points, and rerun the same command:
no response the client had received is requested again, and the folder equals an uninterrupted build's.

"Received" is made exact by freezing the server (SIGSTOP) before each kill: whatever it had answered
by then reaches the client while it waits, and nothing is answered after, so the kill lands with
requests in flight but never between a response's arrival and its commit.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.cached import cache_files, responses
from tests.servers import REPO_ROOT, start_openai_server

KILL_AFTER_REQUESTS = (3, 30, 75)  # cumulative server arrivals: during subjects, questions, answers
DRAIN_S = 1.0  # a frozen server's last answers reach the client and its cache well within this


def command(server, tmp: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "builder.cli", "build", "--preset", "smoke", "--disciplines",
            "Organic Chemistry,Linear Algebra", "--model", "test-model", "--base-url", server.base_url,
            "--concurrency", "4", "--out", str(tmp / name / "dist"), "--work-dir", str(tmp / name / ".glan")]


def parquet_files(folder: Path) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*.parquet"))}


def test_sigkill_three_times_then_resume_equals_an_uninterrupted_build(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with start_openai_server(latency_ms=60) as server:
        stages_hit = set()  # the stage of the last response cached before each kill: three different points
        kills = []  # (time of the kill, bodies answered before it, time the next run started)
        for threshold in KILL_AFTER_REQUESTS:
            build = subprocess.Popen(command(server, tmp_path, "killed"), cwd=REPO_ROOT, env=env,
                                     stderr=subprocess.DEVNULL)
            while server.stats()["requests"] < threshold:
                assert build.poll() is None, "the build ended before the kill point"
                time.sleep(0.02)
            server.process.send_signal(signal.SIGSTOP)
            time.sleep(DRAIN_S)
            killed_at = time.monotonic()
            build.kill()
            build.wait()
            server.process.send_signal(signal.SIGCONT)
            answered = {record["body_sha256"] for record in server.log()
                        if record["status"] == 200 and record["responded"] < killed_at}
            time.sleep(0.5)  # requests the dead client had written reach the server before the next run
            kills.append((killed_at, answered, time.monotonic()))
            for path in cache_files(tmp_path / "killed" / ".glan"):
                with sqlite3.connect(path) as database:
                    assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            cached = sorted(responses(tmp_path / "killed" / ".glan", "created, stage"))
            stages_hit.add(cached[-1][1] if cached else "nothing cached yet")
        assert subprocess.run(command(server, tmp_path, "killed"), cwd=REPO_ROOT, env=env,
                              stderr=subprocess.DEVNULL).returncode == 0
        log = server.log()
        for killed_at, answered, restarted_at in kills:
            again = [record for record in log if record["received"] > restarted_at and record["body_sha256"] in answered]
            assert again == [], f"answered before the kill at {killed_at} and requested again"
        assert len(stages_hit) == 3

        assert subprocess.run(command(server, tmp_path, "clean"), cwd=REPO_ROOT, env=env,
                              stderr=subprocess.DEVNULL).returncode == 0
    clean = parquet_files(tmp_path / "clean" / "dist")
    assert len(clean) == 1 + 2 * 5  # one taxonomy file; per discipline four configs, instructions in two splits
    assert parquet_files(tmp_path / "killed" / "dist") == clean
