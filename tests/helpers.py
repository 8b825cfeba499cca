"""What tests need to drive glan as a user does: a project folder, the CLI in-process, rows read back."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import yaml
from datasets import load_dataset

from glan.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "taxonomy.yaml").read_text())["presets"]["smoke"]
# What a request asks for (the test server's output_of, in its log as `output`) -> the config its rows fill:
# the structured stages' schemas, the free-text questions and answers, and their JSON forms (glan 0.1's prompts).
CONFIG_OF_OUTPUT = {"SubjectList": "subjects", "Syllabus": "syllabi", "question": "questions", "answer": "instructions",
                    "HomeworkQuestion": "questions", "Answer": "instructions"}


def project(root: Path, **presets: dict) -> Path:
    """The shipped taxonomy and prompts under `root`, plus `presets` (each a mapping merged over smoke)."""
    data = yaml.safe_load((REPO / "taxonomy.yaml").read_text())
    for name, preset in presets.items():
        data["presets"][name] = {**SMOKE, **preset}
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts").symlink_to(REPO / "prompts")
    (root / "taxonomy.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "taxonomy.yaml"


def glan(*args: str) -> tuple[int, str, str]:
    """`glan ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in args])
    return code, out.getvalue(), err.getvalue()


def rows(out: Path, config: str, splits: tuple[str, ...] = ("train",)) -> list[dict]:
    return [row for split in splits for row in load_dataset(str(out), config, split=split).to_list()]
