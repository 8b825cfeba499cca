"""The CLI's error contract: a UserError is one line and its exit code, anything else is a bug (traceback
plus one line saying so); out-of-range arguments are one line and exit 2 before anything runs or is written."""

import os
import shutil
from pathlib import Path

import pytest

from glan import cli
from glan.cli import main
from glan.errors import UserError
from glan.llm.local import LocalServerError

REPO = Path(__file__).resolve().parents[1]
BUG_LINE = ("glan: this is a bug in glan, not a problem with your input. Please report it with the traceback "
            "above and the command you ran to the issue tracker of the repository you installed glan from.\n")


def run_raising(monkeypatch, error: BaseException) -> int:
    """`glan show` with its command replaced by one that raises `error`."""
    def raise_it(args):
        raise error

    monkeypatch.setattr(cli.show, "run", raise_it)
    return main(["show"])


def test_a_user_error_is_one_line_and_its_exit_code(monkeypatch, capsys):
    assert run_raising(monkeypatch, UserError("taxonomy.yaml:3: fields: empty. Add a field.")) == 2
    assert capsys.readouterr() == ("", "glan: taxonomy.yaml:3: fields: empty. Add a field.\n")
    # not bad input: the machine could not run the embedded model
    assert run_raising(monkeypatch, LocalServerError("the embedded llama.cpp server did not answer")) == 1
    assert capsys.readouterr() == ("", "glan: the embedded llama.cpp server did not answer\n")


def test_anything_else_is_a_bug_with_its_traceback(monkeypatch, capsys):
    assert run_raising(monkeypatch, ZeroDivisionError("division by zero")) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith("ZeroDivisionError: division by zero\n" + BUG_LINE)


def test_an_interrupt_exits_130(monkeypatch, capsys):
    assert run_raising(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == ("glan: interrupted. Every response received so far is cached: run the "
                                       "same command to resume.\n")


BAD_ARGUMENTS = {
    "concurrency -1": (["build", "--concurrency", "-1"], "--concurrency: expected a whole number of at least 1, got -1"),
    "concurrency 0": (["build", "--concurrency", "0"], "--concurrency: expected a whole number of at least 1, got 0"),
    "concurrency word": (["build", "--concurrency", "many"], "--concurrency: expected a whole number, got 'many'"),
    "max-cost negative": (["build", "--max-cost", "-5"], "--max-cost: expected a number greater than 0, got -5"),
    "max-cost 0": (["build", "--max-cost", "0"], "--max-cost: expected a number greater than 0, got 0"),
    "seed in estimate": (["estimate", "--seed", "x"], "--seed: expected a whole number, got 'x'"),
    "max-cost nan": (["build", "--max-cost", "nan"], "--max-cost: expected a finite number, got 'nan'"),
    "max-requests -1": (["build", "--max-requests", "-1"],
                        "--max-requests: expected a whole number of at least 1, got -1"),
    "failure rate above 1": (["build", "--max-failure-rate", "1.5"],
                             "--max-failure-rate: expected a fraction between 0 and 1 (e.g. 0.01 for 1%), got 1.5"),
    "failure rate below 0": (["build", "--max-failure-rate", "-0.1"],
                             "--max-failure-rate: expected a fraction between 0 and 1 (e.g. 0.01 for 1%), got -0.1"),
    "seed negative": (["build", "--seed", "-3"], "--seed: expected a whole number of at least 0, got -3"),
    "seed fraction": (["build", "--seed", "1.5"], "--seed: expected a whole number, got '1.5'"),
    "rows 0": (["show", "--rows", "0"], "--rows: expected a whole number of at least 1, got 0"),
    "count 0": (["taxonomy", "propose", "--count", "0"], "--count: expected a whole number of at least 1, got 0"),
    "port 0": (["serve-local", "--port", "0"], "--port: expected a whole number of at least 1, got 0"),
    "port too large": (["serve-local", "--port", "70000"], "--port: expected a TCP port from 1 to 65535, got 70000"),
}


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_an_argument_out_of_range_is_one_line_and_exit_2_before_anything_runs(argv, message, tmp_path, capsys,
                                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "taxonomy.yaml", tmp_path / "taxonomy.yaml")
    command = " ".join(argv[:2]) if argv[0] == "taxonomy" else argv[0]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    assert capsys.readouterr() == ("", f"glan: argument {message}. See `glan {command} --help`.\n")
    assert os.listdir(tmp_path) == ["taxonomy.yaml"]


@pytest.mark.parametrize("command", ["build", "estimate"])
def test_a_missing_taxonomy_gets_the_same_line_with_or_without_an_endpoint(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = ("", "glan: nowhere.yaml: file not found. Pass the path of a taxonomy YAML, or run `glan init` to "
                    "start from the one shipped with glan.\n")
    assert main([command, "--taxonomy", "nowhere.yaml"]) == 2
    assert capsys.readouterr() == expected
    assert main([command, "--taxonomy", "nowhere.yaml", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 2
    assert capsys.readouterr() == expected
    assert os.listdir(tmp_path) == []
