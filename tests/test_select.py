"""Choosing disciplines by name, id, pattern or @FILE (`--disciplines`), and `glan taxonomy list`."""

import os
from pathlib import Path

import pytest

from glan.config.run import RunSettings
from glan.plan import resolve
from glan.taxonomy import load_taxonomy
from tests.helpers import glan

EVERY = load_taxonomy("taxonomy.yaml").disciplines()


def chosen(*selectors: str) -> list[str]:
    run = resolve(RunSettings(disciplines=selectors, model="m", base_url="http://127.0.0.1:9", progress=False))
    return [ref.discipline_id for ref in run.disciplines]


def test_a_name_with_commas_is_one_discipline_alone_or_in_a_list():
    assert chosen("Fractions, Decimals and Percentages") == ["fractions-decimals-and-percentages"]
    assert chosen("linear algebra,Fractions,  Decimals and Percentages ,organic-chemistry") == [
        "organic-chemistry", "fractions-decimals-and-percentages", "linear-algebra"]  # taxonomy order, each once
    assert chosen("Linear Algebra", "linear-algebra") == ["linear-algebra"]
    assert chosen("Fractions,Decimals and Percentages,Linear Algebra") == [  # as a rebuild command writes it
        "fractions-decimals-and-percentages", "linear-algebra"]


def test_the_rebuild_command_names_what_a_rebuilder_can_select(tmp_path):
    from glan.publish.manifest import reproduction

    listed = tmp_path / "chosen.txt"
    listed.write_text("Fractions, Decimals and Percentages\norganic-chemistry\n")
    for selectors, flag in [(("Organic Chemistry, Linear Algebra",), "'Organic Chemistry,Linear Algebra'"),
                            ((f"@{listed}",), "organic-chemistry,fractions-decimals-and-percentages")]:
        run = resolve(RunSettings(disciplines=selectors, model="m", base_url="http://127.0.0.1:9", progress=False))
        command = reproduction(run, ["instructions"]).command
        assert f" --disciplines {flag} " in command


def test_patterns_match_the_path_or_the_id():
    chemistry = [ref.discipline_id for ref in EVERY if ref.subfield == "Chemistry"]
    assert len(chemistry) > 2
    assert chosen("Natural Sciences/Chemistry/*") == chemistry
    assert chosen("*/chemistry/*") == chemistry
    assert chosen("Mathematics/*") == [ref.discipline_id for ref in EVERY if ref.field == "Mathematics"]
    assert chosen("*-chemistry") == [ref.discipline_id for ref in EVERY if ref.discipline_id.endswith("-chemistry")]


def test_a_file_lists_one_selector_a_line(tmp_path):
    listed = tmp_path / "chosen.txt"
    listed.write_text("# for the workshop\nFractions, Decimals and Percentages\n\n  organic-chemistry  \n")
    assert chosen(f"@{listed}") == ["organic-chemistry", "fractions-decimals-and-percentages"]


@pytest.mark.parametrize(("given", "line"), [
    ("Linear Algebr", 'glan: taxonomy.yaml: --disciplines: no discipline named "Linear Algebr". Did you mean '
                      '"Linear Algebra"? `glan taxonomy list` lists every name and id.\n'),
    ("Linear Algebra, Organic Chemestry", 'glan: taxonomy.yaml: --disciplines: no discipline named "Organic '
     'Chemestry". Did you mean "Organic Chemistry" or "Inorganic Chemistry"? `glan taxonomy list` lists every name '
     'and id.\n'),
    ("Alchemy/*", 'glan: taxonomy.yaml: --disciplines: no discipline matches "Alchemy/*". A pattern matches '
     '"Field/Sub-field/Discipline" or an id, e.g. "Mathematics/*" or "*-chemistry"; `glan taxonomy list` lists '
     'them.\n'),
    ("@missing.txt", "glan: taxonomy.yaml: --disciplines: @missing.txt: cannot read it (No such file or "
     "directory). Name a text file of one discipline a line.\n"),
])
def test_a_miss_is_one_line_that_names_the_closest(given, line):
    code, out, err = glan("estimate", "--disciplines", given, "--model", "m", "--base-url", "http://127.0.0.1:9")
    assert code == 2
    assert err == line
    assert out == ""


def test_taxonomy_list_shows_every_id_and_path():
    code, out, _ = glan("taxonomy", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(EVERY)
    assert lines[0].split(None, 1) == [EVERY[0].discipline_id, f"{EVERY[0].field}/{EVERY[0].subfield}/{EVERY[0].discipline}"]
    code, out, _ = glan("taxonomy", "list", "--under", "natural sciences/chemistry")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == chosen("Natural Sciences/Chemistry/*")


def test_taxonomy_list_under_a_miss_says_what_is_close():
    code, _, err = glan("taxonomy", "list", "--under", "Mathematic")
    assert code == 2
    assert err == ('glan: taxonomy.yaml: --under: no field or sub-field "Mathematic". Did you mean '
                           '"Mathematics"? Write "Field" or "Field/Sub-field".\n')


def test_a_list_that_names_nothing_is_one_line_not_an_empty_build(tmp_path):
    comments = tmp_path / "nothing.txt"
    comments.write_text("# nothing yet\n\n")
    for given, shown in ((",,", "',,'"), (f"@{comments}", f"'@{comments}'")):
        code, out, err = glan("build", "--disciplines", given, "--model", "m", "--base-url", "http://127.0.0.1:9",
                              "--work-dir", tmp_path / ".glan", "--out", tmp_path / "dist")
        assert (code, out) == (2, "")
        assert err == f"glan: taxonomy.yaml: --disciplines: {shown} names no discipline. Name at least one.\n"


def test_a_list_file_is_a_regular_file_of_at_most_a_mebibyte(tmp_path):
    fifo, large = tmp_path / "fifo", tmp_path / "large.txt"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    large.write_text("organic-chemistry\n" * 60_000)
    for path, reason in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                         (large, "more than 1,048,576 bytes")):
        code, _, err = glan("estimate", "--disciplines", f"@{path}", "--model", "m", "--base-url", "http://127.0.0.1:9")
        assert (code, err) == (2, f"glan: taxonomy.yaml: --disciplines: @{path}: cannot read it ({reason}). Name a "
                                  "text file of one discipline a line.\n")
