"""The habits of the field's CLIs: -q/-v, a log file per run in the work dir, --json on estimate, build, batches
(tests/test_batch.py) and validate, and shell completion. (--token and the Hub's progress bars: tests/test_hub.py.)"""

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from glan.config.run import RunSettings
from glan.estimate import Estimate, StageEstimate
from glan.plan import resolve
from tests.helpers import PATIENCE_S, build_args, glan

ROOT = Path(__file__).resolve().parents[1]
DISCIPLINES = "Organic Chemistry,Linear Algebra"


def test_quiet_prints_nothing_but_problems_and_verbose_what_glan_decided(openai_server, tmp_path):
    code, out, err = glan(*build_args(openai_server, tmp_path / "dist", tmp_path / ".glan", "-q"))
    assert code == 0
    assert (out, err) == ("", "")  # no plan line, no progress, no summary
    assert openai_server.stats()["requests"] > 0

    code, _, err = glan(*build_args(openai_server, tmp_path / "dist", tmp_path / ".glan"))
    assert code == 0
    # A rebuild: nothing is left to request.
    assert err.startswith("glan: nothing to request: all 2 disciplines are built already with these settings.\n")
    assert "\nstage " in err
    assert " at http" not in err

    code, _, err = glan(*build_args(openai_server, tmp_path / "dist", tmp_path / ".glan", "-v"))
    assert code == 0
    decided = [line for line in err.splitlines() if f" at {openai_server.base_url}, prompt " in line]
    assert [line.split(":")[1].strip() for line in decided] == ["subjects", "syllabus", "questions", "answers"]
    assert "glan: 2 disciplines: organic-chemistry, linear-algebra" in err.splitlines()

    code, _, err = glan("estimate", "-q", "--disciplines", "Organic Chemestry", "--model", "m")
    assert code == 2
    assert err.startswith('glan: taxonomy.yaml: --disciplines: no discipline named "Organic Chemestry".')


def test_each_build_writes_a_log_file_of_every_message_in_the_work_dir(openai_server, tmp_path):
    quiet = build_args(openai_server, tmp_path / "dist", tmp_path / ".glan", "-q")
    assert glan(*quiet)[0] == 0
    assert glan(*build_args(openai_server, tmp_path / "dist", tmp_path / ".glan", "--disciplines", "Nope"))[0] == 2
    logs = sorted((tmp_path / ".glan" / "logs").iterdir(), key=lambda path: path.stat().st_mtime_ns)
    assert [path.name.split("-", 1)[1].rsplit("-", 1)[0] for path in logs] == ["build", "build"]
    first, second = (path.read_text() for path in logs)
    # Whatever -q hid: the command, what glan decided, the plan line, the summary.
    assert first.splitlines()[0].endswith(f" DEBUG glan {' '.join(quiet)} "
                                          f"(pid {os.getpid()}, cwd {Path.cwd()})")
    for expected in (" DEBUG glan: subjects: test-model at ", " INFO glan: about to make up to ",
                     " INFO stage            rows  requests", "\ninstructions "):
        assert expected in first
    assert second.splitlines()[-1].endswith(' ERROR glan: taxonomy.yaml: --disciplines: no discipline named "Nope". '
                                            "`glan taxonomy list` lists every name and id.")


def test_build_json_is_the_build_result_on_stdout(openai_server, tmp_path):
    code, out, _ = glan(*build_args(openai_server, tmp_path / "dist", tmp_path / ".glan", "--json"))
    assert code == 0
    result = json.loads(out)
    assert result["folder"] == str(tmp_path / "dist") and result["complete"] and result["stop_reason"] is None
    assert list(result["usage"]) == ["subjects", "syllabus", "questions", "answers"]
    for config in ("subjects", "syllabi", "questions", "instructions"):
        written: dict[str, int] = {}
        for path in (tmp_path / "dist" / config).glob("*.parquet"):  # <split>-<discipline id>.parquet
            split = path.name.split("-")[0]
            written[split] = written.get(split, 0) + pq.read_metadata(path).num_rows
        assert result["rows"][config] == written and written["train"] > 0
    assert sum(stage["requests"] for stage in result["usage"].values()) == openai_server.stats()["requests"]
    assert result["disciplines"] == result["disciplines_run"] == 2 and result["failures"] == 0


def test_estimate_json_is_the_estimate_on_stdout(tmp_path):
    code, out, _ = glan("estimate", "--json", "--preset", "smoke", "--disciplines", DISCIPLINES,
                        "--model", "gpt-4o-mini", "--work-dir", tmp_path / ".glan")
    assert code == 0
    estimate = json.loads(out)
    stages = estimate["stages"]
    assert [stage["stage"] for stage in stages] == ["subjects", "syllabus", "questions", "answers"]
    assert stages[0]["requests"] == 4 and stages[0]["model"] == "gpt-4o-mini"  # 2 samples for each discipline
    assert all(stage["cost"] > 0 for stage in stages)
    assert estimate["disciplines"] == 2 and estimate["train_pairs"] > 0


def test_estimate_json_is_the_estimates_to_dict_with_its_totals(tmp_path):
    """--json prints Estimate.to_dict() (docs/api.md): every field of the Estimate, as it printed before, and its
    totals and each stage's requests to send, which it left out."""
    code, out, _ = glan("estimate", "--json", "--preset", "smoke", "--disciplines", DISCIPLINES,
                        "--model", "gpt-4o-mini", "--work-dir", tmp_path / ".glan")
    assert code == 0
    estimate = json.loads(out)
    totals = {"requests", "to_send", "prompt_tokens", "completion_tokens", "cost", "unpriced"}
    assert set(estimate) == {field.name for field in fields(Estimate)} | totals
    stages = estimate["stages"]
    assert all(set(stage) == {field.name for field in fields(StageEstimate)} | {"to_send"} for stage in stages)
    assert [stage["to_send"] for stage in stages] == [stage["requests"] for stage in stages]  # nothing cached
    for total in ("requests", "to_send", "prompt_tokens", "completion_tokens", "cost"):
        assert estimate[total] == pytest.approx(sum(stage[total] for stage in stages)) and estimate[total] > 0
    assert estimate["unpriced"] == []
    limits = resolve(RunSettings(preset="smoke", disciplines=tuple(DISCIPLINES.split(",")), model="gpt-4o-mini")).limits
    assert (estimate["confirm_above_requests"], estimate["confirm_above_usd"]) == \
        (limits.confirm_above_requests, limits.confirm_above_usd)
    assert estimate["work_dir"] == str(tmp_path / ".glan")


def test_validate_json():
    code, out, _ = glan("taxonomy", "validate", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["path"] == "taxonomy.yaml" and summary["disciplines"] == 149
    assert summary["presets"] == ["demo", "judged", "paper", "smoke"]


def complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell gets when TAB is pressed at the end of `line` (argcomplete's protocol, as its shell script
    speaks it), from a fresh `glan` process."""
    answer = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_IFS": "\n", "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)}
    subprocess.run([sys.executable, "-m", "glan.cli"], cwd=ROOT, env=env, timeout=PATIENCE_S, check=True)
    return answer.read_text().split("\n")


def test_shell_completion(tmp_path):
    code, out, _ = glan("completion", "bash")
    assert code == 0
    assert "complete -o nospace -o default -o bashdefault -F _python_argcomplete glan" in out
    assert complete("glan tax", tmp_path) == ["taxonomy "]
    assert complete("glan taxonomy l", tmp_path) == ["list "]
    assert sorted(complete("glan build --disciplines organic-", tmp_path)) == ["organic-chemistry "]
    assert complete("glan estimate --preset sm", tmp_path) == ["smoke "]
