"""Bad input and a hostile environment cost nothing: checked before the first request, one line each, the
folder at --out replaced only by a complete build."""

import re
import errno
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from glan.execute import progress
from glan.cli import main
from glan.publish import export
from tests.helpers import PATIENCE_S
from tests.servers import REPO_ROOT, start_openai_server

DISCIPLINES = "Organic Chemistry,Linear Algebra"


def project(tmp: Path) -> Path:
    shutil.copytree(REPO_ROOT / "prompts", tmp / "prompts")
    shutil.copy(REPO_ROOT / "taxonomy.yaml", tmp / "taxonomy.yaml")
    return tmp / "taxonomy.yaml"


def build_args(taxonomy, base_url, run_dir, *extra):
    return ["build", "--taxonomy", str(taxonomy), "--preset", "smoke", "--disciplines", DISCIPLINES,
            "--model", "test-model", "--base-url", base_url, "--out", str(run_dir / "dist"),
            "--work-dir", str(run_dir / ".glan"), *extra]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """A project with a complete folder at dist/."""
    tmp = tmp_path_factory.mktemp("complete")
    taxonomy = project(tmp)
    with start_openai_server() as server:
        assert main(build_args(taxonomy, server.base_url, tmp)) == 0
    return {"tmp": tmp, "taxonomy": taxonomy, "folder": snapshot(tmp / "dist")}


def test_an_unreachable_endpoint_stops_in_seconds_and_leaves_the_complete_folder(complete, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(complete["tmp"], run)
    taxonomy = run / "taxonomy.yaml"  # a new discipline to build, so the endpoint is needed
    text = taxonomy.read_text()
    taxonomy.write_text(text.replace("version: 1.0.0", "version: 1.1.0"))
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code = main(build_args(taxonomy, url, run, "--disciplines", DISCIPLINES + ",Genetics"))
    err = capsys.readouterr().err
    assert code == 2
    assert f"glan: {url}: cannot connect (connection refused) after 3 tries. Check the URL and that the server is " \
           "running and reachable from this machine." in err
    assert "Traceback" not in err
    assert snapshot(run / "dist") == complete["folder"]
    assert not (run / "dist.incomplete").exists()


def test_a_budget_stop_leaves_the_complete_folder_and_writes_what_was_complete_beside_it(complete, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(complete["tmp"], run)
    with start_openai_server() as server:
        code = main(build_args(complete["taxonomy"], server.base_url, run, "--seed", "7", "--max-requests", "5"))
        assert server.stats()["requests"] == 5
    err = capsys.readouterr().err
    assert code == 1
    assert f"glan: the build is incomplete: --max-requests 5 reached. What was complete is in {run / 'dist.incomplete'}; " \
           f"{run / 'dist'} was left as it was." in err
    assert snapshot(run / "dist") == complete["folder"]
    assert (run / "dist.incomplete" / "README.md").exists()


@pytest.mark.parametrize("value, message", [
    ("not a url", '--base-url: "not a url" is not an endpoint URL: expected an http:// or https:// URL, e.g. '
                  "http://localhost:8000/v1."),
    ("http://127.0.0.1:port/v1", '--base-url: "http://127.0.0.1:port/v1" is not an endpoint URL: its port is not a '
                                 "number."),
])
def test_a_base_url_that_is_not_a_url_is_refused_before_anything(tmp_path, capsys, value, message):
    code = main(build_args(REPO_ROOT / "taxonomy.yaml", value, tmp_path))
    assert code == 2
    assert capsys.readouterr().err == f"glan: {message}\n"
    assert not (tmp_path / ".glan").exists() and not (tmp_path / "dist").exists()


def test_out_naming_a_file_is_refused_and_the_file_kept(tmp_path, capsys):
    (tmp_path / "dist").write_text("my notes")
    with start_openai_server() as server:
        code = main(build_args(REPO_ROOT / "taxonomy.yaml", server.base_url, tmp_path))
        assert server.stats()["requests"] == 0
    assert code == 2
    assert capsys.readouterr().err == (
        f"glan: {tmp_path / 'dist'}: --out names an existing file, not a folder. Pass a folder path for the dataset "
        "(it is created, or replaced only by a complete build).\n")
    assert (tmp_path / "dist").read_text() == "my notes"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dist"]


def test_a_cost_budget_needs_a_price_for_every_model(tmp_path, capsys):
    with start_openai_server() as server:
        code = main(build_args(REPO_ROOT / "taxonomy.yaml", server.base_url, tmp_path, "--max-cost", "1"))
        assert server.stats()["requests"] == 0
    assert code == 2
    assert capsys.readouterr().err == (
        "glan: --max-cost: no price for test-model, so the cost could not be counted. Give every model a price: "
        "--price test-model=IN,OUT (USD per million input and output tokens), or generation.prices in the "
        "taxonomy.\n")


def test_an_undefined_template_variable_fails_before_any_request(tmp_path, capsys):
    taxonomy = project(tmp_path)
    questions = tmp_path / "prompts" / "questions.yaml"
    questions.write_text(questions.read_text().replace("{{ learned_up_to }}", "{{ learned_upto }}"))
    with start_openai_server() as server:
        code = main(build_args(taxonomy, server.base_url, tmp_path))
        assert server.stats()["requests"] == 0
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"glan: {questions}: template line 6: 'learned_upto' is undefined. The questions prompt "
                          "can use: chosen_sessions, discipline, discipline_id, field, key_concepts, learned_up_to, ")
    assert err.count("\n") == 1


def test_a_full_disk_under_the_work_dir_is_one_line_and_the_previous_folder_stays(complete, tmp_path):
    """The build's process may write files of at most 20 kB, as a nearly full disk would refuse more: opening the
    cache (its 32 kB shared-memory file) fails. One line, no traceback, exit 2, the complete folder untouched."""
    run = tmp_path / "run"
    shutil.copytree(complete["tmp"], run)

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    with start_openai_server() as server:
        done = subprocess.run([sys.executable, "-m", "glan.cli", *build_args(complete["taxonomy"], server.base_url,
                                                                              run)],
                              cwd=REPO_ROOT, preexec_fn=small_disk, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                              capture_output=True, text=True, timeout=PATIENCE_S)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"glan: {run / '.glan'}: cannot write the work dir (disk I/O error). Free some space or pass another "
        "--work-dir; every response received so far is cached.")
    assert snapshot(run / "dist") == complete["folder"]


def test_a_full_disk_at_out_is_one_line_and_leaves_no_half_folder(complete, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(complete["tmp"], run)
    stale = run / ".dist.partial-999999999"  # a build killed mid-write left this behind
    stale.mkdir()

    def no_space(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(export.shutil, "copyfile", no_space)
    with start_openai_server() as server:
        assert main(build_args(complete["taxonomy"], server.base_url, run)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"glan: {run}/.dist.partial-{os.getpid()}/")
    assert err[-1].endswith(": cannot write the dataset folder (No space left on device). Free some space or pass "
                            "another --out; every response is cached, so running the same command again costs no "
                            "request.")
    assert snapshot(run / "dist") == complete["folder"]
    assert sorted(path.name for path in run.iterdir() if path.name.startswith(".dist")) == []


STATUS = re.compile(r"glan: (\d+)/2 disciplines; requests ([\d,]+)/~([\d,]+) \(([\d.,]+)/s, ETA (\?|[\dhms]+)\): "
                    r"subjects (\d+)/(\d+), syllabus (\d+)/~(\d+), questions (\d+)/~(\d+), answers (\d+)/~(\d+); "
                    r"([\d.]+) USD, projected (\?|~[\d.]+); (\d+) failed")


def test_off_a_terminal_a_status_line_comes_every_few_seconds(tmp_path, capsys, monkeypatch):
    """In requests: per stage done of expected, the rate, the time left, the cost so far and projected."""
    monkeypatch.setattr(progress, "INTERVAL_S", 0.05)
    with start_openai_server(latency_ms=100) as server:
        assert main(build_args(REPO_ROOT / "taxonomy.yaml", server.base_url, tmp_path, "--concurrency", "2",
                               "--price", "test-model=1000,2000", "--yes")) == 0  # priced above the threshold
    status = [line for line in capsys.readouterr().err.splitlines() if " disciplines; " in line]
    assert len(status) >= 5
    matches = [STATUS.fullmatch(line) for line in status]
    assert all(matches), [line for line, match in zip(status, matches) if not match]
    first, last = matches[0].groups(), matches[-1].groups()
    assert first[:2] == ("0", "0") and first[5:7] == ("0", "4") and first[14] == "?"  # nothing done, nothing paid
    for match in matches:
        done = [int(match.group(index)) for index in (6, 8, 10, 12)]
        assert int(match.group(2).replace(",", "")) == sum(done)
        assert int(match.group(7)) == 4  # the subjects stage's count is exact: 2 samples for each of 2 disciplines
    assert int(last[5]) == 4 and int(last[7]) > 0  # the last line comes while the answers are still going
    assert any(match.group(5) != "?" and match.group(15) != "?" for match in matches)  # an ETA and a projection
    assert [int(match.group(2).replace(",", "")) for match in matches] == sorted(
        int(match.group(2).replace(",", "")) for match in matches)


def test_a_failure_rate_over_the_limit_says_why(tmp_path, capsys):
    # Faults follow arrival order: at 70% per answer, a third of the requests fail all 3 attempts, whatever the order.
    with start_openai_server(fault_rate=0.7, faults={"schema_invalid": 1}) as server:
        code = main(build_args(REPO_ROOT / "taxonomy.yaml", server.base_url, tmp_path, "--max-failure-rate", "0.001"))
    err = capsys.readouterr().err
    assert code == 1
    [line] = [line for line in err.splitlines() if line.startswith("glan: the build is incomplete: ")]
    assert " requests failed (" in line and "), more than --max-failure-rate 0.001 allows" in line
    assert (tmp_path / "dist.incomplete" / "README.md").exists() and not (tmp_path / "dist").exists()


def test_on_a_terminal_the_bar_counts_requests_with_the_same_figures(capsys):
    from glan.llm.accounting import Accounting, ModelPrice

    accounting = Accounting({"m": ModelPrice(1000.0, 0.0, 1000.0)})
    shown = progress.Progress(2, accounting, True, {"subjects": 4, "syllabus": 10.5})
    usage = accounting.usage("subjects", "m")
    usage.succeeded, usage.requests, usage.prompt_tokens = 3, 3, 300
    usage.cost = accounting.cost("m", 300, 0)
    shown.unit_done()
    shown.close()
    bar = capsys.readouterr().err.split("\r")[-1]
    assert bar.startswith("requests:  20%|") and " 3/15 " in bar
    assert bar.rstrip().endswith("1/2 disciplines; subjects 3/4, syllabus 0/~11; 0.3000 USD, projected ~1.4500; 0 failed]")
