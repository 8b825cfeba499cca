"""What tests need to drive glan as a user does: a project folder, the CLI in-process, rows read back, and the one
way to wait for something."""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from datasets import load_dataset

from glan.cli import main

REPO = Path(__file__).resolve().parents[1]
PRESETS = yaml.safe_load((REPO / "taxonomy.yaml").read_text())["presets"]  # the shipped presets, by name
SMOKE = PRESETS["smoke"]
# What a request asks for (the test server's output_of, in its log as `output`) -> the config its rows fill:
# the structured stages' schemas, the free-text questions and answers, and their JSON forms (glan 0.1's prompts).
CONFIG_OF_OUTPUT = {"SubjectList": "subjects", "Syllabus": "syllabi", "question": "questions", "answer": "instructions",
                    "HomeworkQuestion": "questions", "Answer": "instructions"}
# How long a test waits for anything before it fails, saying what it waited for: far longer than anything takes on
# a quiet machine (seconds; loading the embedded model, under a minute), so a machine whose every core is busy with
# other work passes too. A bound exists to turn a hang into a failure with a reason, never to time anything.
PATIENCE_S = 300
T = TypeVar("T")


def project(root: Path, **presets: dict) -> Path:
    """The shipped taxonomy and prompts under `root`, plus `presets` (each a mapping merged over smoke)."""
    data = yaml.safe_load((REPO / "taxonomy.yaml").read_text())
    for name, preset in presets.items():
        data["presets"][name] = {**SMOKE, **preset}
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts").symlink_to(REPO / "prompts")
    (root / "taxonomy.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "taxonomy.yaml"


def build_args(server, out: Path, work: Path, *flags: str, disciplines: str = "Organic Chemistry,Linear Algebra",
               preset: str = "smoke", taxonomy: Path | None = None) -> list[str]:
    """The arguments of `glan build` of `disciplines` (a --disciplines value) with `preset` against the test server
    `server` (its model "test-model"), into `out` with the work dir `work`, then `flags`."""
    return ["build", *(["--taxonomy", str(taxonomy)] if taxonomy else []), "--preset", preset, "--disciplines",
            disciplines, "--model", "test-model", "--base-url", server.base_url, "--out", str(out), "--work-dir",
            str(work), *flags]


def glan(*args: str) -> tuple[int, str, str]:
    """`glan ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in args])
    return code, out.getvalue(), err.getvalue()


def words(*key, count: int = 16) -> str:
    """`count` words found nowhere else: each a hash of `key` and the word's position."""
    return " ".join("w" + hashlib.sha256(repr((key, n)).encode()).hexdigest()[:10] for n in range(count))


def rows(out: Path, config: str, splits: tuple[str, ...] = ("train",)) -> list[dict]:
    return [row for split in splits for row in load_dataset(str(out), config, split=split).to_list()]


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = PATIENCE_S,
               process: subprocess.Popen | None = None) -> T:
    """The first true value of condition(), asked every 20 ms. Fails naming `what` after timeout_s, or at once,
    with its exit code, when `process` (one that makes the condition come true) has ended and it has not."""
    deadline = time.monotonic() + timeout_s
    while True:
        ended = process is not None and process.poll() is not None  # before asking: what it did is done
        if value := condition():
            return value
        if ended:
            raise AssertionError(f"{process.args} exited with code {process.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(0.02)
