"""The CLI: bad input gets one clear message, exit code 2 and nothing written; show; the summary."""

import json

import pytest

from glan.cli import main
from tests.test_pipeline import DISCIPLINES, build, load


def test_build_with_a_malformed_taxonomy_exits_2_and_writes_nothing(tmp_path, capsys):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("version: 1.0.0\nfields:\n  - name: Science\n    subfields: []\n")
    out, work = tmp_path / "dist", tmp_path / ".glan"
    code = main(["build", "--taxonomy", str(taxonomy), "--model", "m", "--out", str(out), "--work-dir", str(work)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"glan: {taxonomy}:4: fields[0].subfields: ")
    assert not out.exists() and not work.exists()


def test_unknown_discipline_and_config_are_refused(tmp_path, capsys):
    assert main(["build", "--disciplines", "Alchemy", "--model", "m", "--work-dir", str(tmp_path / "w")]) == 2
    assert "--disciplines: no discipline named \"Alchemy\"." in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["build", "--configs", "answers", "--model", "m"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == ("glan: argument --configs: unknown config answers; choose from taxonomy, "
                                       "subjects, syllabi, questions, instructions. See `glan build --help`.\n")


def test_show_prints_rows_of_every_split_and_discipline_read_back_with_load_dataset(openai_server, tmp_path, capsys):
    code, out, _ = build(openai_server, tmp_path)
    assert code == 0
    capsys.readouterr()
    assert main(["show", str(out), "--rows", "2"]) == 0
    printed = capsys.readouterr().out
    train, test = load(out, "instructions"), load(out, "instructions", "test")
    assert printed.startswith(f'load_dataset("{out}", "instructions"): train {len(train)} rows, test 2 rows, of 2 '
                              "disciplines\n\ntrain: the first 2 rows, a discipline at a time:\n\n")
    # One row of each discipline, not the first two of the first one; then the test split's.
    shown = [line for line in printed.splitlines() if line.startswith("[")]
    firsts = [next(row for row in rows if row["discipline"] == name)
              for rows in (train, test) for name in dict.fromkeys(row["discipline"] for row in rows)]
    assert shown == [f"[{row['discipline']} / {row['subject']}]" for row in firsts]
    assert "\ntest: the first 2 rows, a discipline at a time:\n" in printed
    assert "  user: " in printed and "  assistant: " in printed

    assert main(["show", str(out), "--split", "test", "--discipline", "linear-algebra"]) == 0
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if line.startswith(("[", "train", "test"))] == \
        ["test: the first 1 row of linear-algebra:",
         next(f"[Linear Algebra / {row['subject']}]" for row in test if row["discipline"] == "Linear Algebra")]

    assert main(["show", str(out), "--discipline", "Genetics"]) == 2
    assert capsys.readouterr().err.startswith(f"glan: {out}: instructions has no rows of Genetics; pass --discipline")
    assert main(["show", str(out), "--split", "validation"]) == 2
    assert capsys.readouterr().err == f"glan: {out}: instructions has no split 'validation'; it has train, test.\n"


def test_show_without_a_build_says_what_to_do(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nothing")]) == 2
    assert "no built dataset here. Run `glan build --out" in capsys.readouterr().err


def test_the_summary_lists_what_the_quality_steps_dropped(openai_server, tmp_path, capsys):
    code, out, _ = build(openai_server, tmp_path)
    assert code == 0
    stats = json.loads((out / "stats.json").read_text())["quality"]["dropped"]
    dropped = ", ".join(f"{reason} {entry['total']:,}" for reason, entry in stats.items())
    test_rows = len(load(out, "instructions", "test"))
    assert test_rows == len(DISCIPLINES)  # the smoke preset holds out one question per discipline
    assert (f"quality: dropped {dropped}; held-out test split {test_rows:,} rows (details in stats.json)"
            in capsys.readouterr().err)


def _every_parser(parser):
    """The parser and each subcommand's, recursively."""
    import argparse

    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_parser(sub)


def test_every_option_has_help_and_glan_has_a_version(capsys):
    import pytest

    from glan import __version__
    from glan.cli import _parser

    commands = {parser.prog: parser for parser in _every_parser(_parser([]))}
    # batches is the Batch API's command; its help comes with that command's rework
    assert {"glan init", "glan build", "glan estimate", "glan push", "glan pull", "glan show", "glan serve-local",
            "glan taxonomy validate", "glan taxonomy propose", "glan taxonomy diff"} <= set(commands)
    for prog, parser in commands.items():
        if prog in ("glan", "glan taxonomy", "glan batches"):
            continue
        for action in parser._actions:
            assert action.help, f"{prog} {action.option_strings or action.dest}: no help text"
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"glan {__version__}\n"


def test_help_shows_defaults_and_the_taxonomys_presets(tmp_path, capsys, monkeypatch):
    import pytest

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping: paths stay whole

    with pytest.raises(SystemExit):
        main(["build", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--out OUT the dataset folder to write (default: dist)" in help_text
    assert "--work-dir WORK_DIR the response cache and run state (default: .glan)" in help_text
    assert "one of demo, judged, paper, smoke (from taxonomy.yaml)" in help_text
    assert "(default: None)" not in help_text and "(default: False)" not in help_text
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\n")
    for argv in (["estimate", "--taxonomy", str(broken), "--help"], ["push", "--help"]):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(none listed: {broken} does not load; `glan taxonomy validate {broken}` says why)" in help_text
    assert "--from FROM_DIR the folder `glan build` wrote (default: dist)" in help_text
    assert "The token is read from HF_TOKEN" in help_text


def test_each_option_states_its_default_once():
    from glan.cli import _parser

    for parser in _every_parser(_parser([])):
        formatter = parser._get_formatter()
        for action in parser._actions:
            shown = formatter._get_help_string(action) or ""
            assert shown.count("(default:") <= 1, f"{parser.prog} {action.option_strings}: {shown}"


def test_estimate_refuses_flags_that_mean_nothing_to_it(capsys):
    import pytest

    for flag in ("--out", "--concurrency", "--max-cost", "--max-requests", "--max-failure-rate"):
        with pytest.raises(SystemExit) as exit:
            main(["estimate", flag, "1"])
        assert exit.value.code == 2
        assert capsys.readouterr().err == f"glan: unrecognized arguments: {flag} 1. See `glan --help`.\n"


def test_init_writes_the_shipped_project_once(tmp_path, capsys):
    from glan.project import SHIPPED_PROMPTS, SHIPPED_TAXONOMY

    assert main(["init", str(tmp_path / "project")]) == 0
    assert (tmp_path / "project" / "taxonomy.yaml").read_bytes() == SHIPPED_TAXONOMY.read_bytes()
    for prompt in SHIPPED_PROMPTS.glob("*.yaml"):
        assert (tmp_path / "project" / "prompts" / prompt.name).read_bytes() == prompt.read_bytes()
    assert "wrote 7 files into" in capsys.readouterr().out
    (tmp_path / "project" / "taxonomy.yaml").write_text("version: 9.9.9\n")
    (tmp_path / "project" / "prompts" / "answers.yaml").unlink()
    assert main(["init", str(tmp_path / "project")]) == 2
    assert capsys.readouterr().err == (
        f"glan: {tmp_path / 'project' / 'taxonomy.yaml'}: already exists. Pick an empty directory, or move the "
        "file away; glan never overwrites a project file.\n")
    assert (tmp_path / "project" / "taxonomy.yaml").read_text() == "version: 9.9.9\n"
    assert not (tmp_path / "project" / "prompts" / "answers.yaml").exists()


def test_the_prompts_a_build_uses(openai_server, tmp_path, capsys):
    """Beside the taxonomy; else the shipped ones, with a note; --prompts names another folder."""
    import shutil

    from glan.project import SHIPPED_PROMPTS

    shutil.copy("taxonomy.yaml", tmp_path / "taxonomy.yaml")
    flags = ["--taxonomy", str(tmp_path / "taxonomy.yaml"), "--preset", "smoke", "--model", "test-model",
             "--base-url", openai_server.base_url, "--work-dir", str(tmp_path / ".glan")]
    assert main(["estimate", *flags]) == 0
    assert capsys.readouterr().err.startswith(
        f"glan: no prompts/ beside {tmp_path / 'taxonomy.yaml'}: using the prompts shipped with glan "
        f"({SHIPPED_PROMPTS}). `glan init DIR` writes a copy to edit; --prompts DIR names another folder.\n")
    mine = tmp_path / "mine"
    shutil.copytree(SHIPPED_PROMPTS, mine)
    (mine / "answers.yaml").write_text("params: {}\n")
    assert main(["estimate", *flags, "--prompts", str(mine)]) == 2
    assert capsys.readouterr().err == (f"glan: {mine / 'answers.yaml'}:1: output_model: missing. Every prompt file "
                                       'needs "output_model:"; add it.\n')
    shutil.copytree(mine, tmp_path / "prompts")
    assert main(["estimate", *flags]) == 2
    assert capsys.readouterr().err.startswith(f"glan: {tmp_path / 'prompts' / 'answers.yaml'}:1: output_model: ")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Questions built with --seed 1 (twice, in separate work dirs) and with --seed 2."""
    from tests.helpers import glan
    from tests.servers import start_openai_server

    tmp = tmp_path_factory.mktemp("seeded")
    with start_openai_server() as server:
        def build_questions(name, seed, work):
            return glan("build", "--preset", "smoke", "--disciplines", ",".join(DISCIPLINES), "--configs", "syllabi,questions",
                        "--model", "test-model", "--base-url", server.base_url, "--seed", seed, "--out", tmp / name,
                        "--work-dir", tmp / work)

        codes = {name: build_questions(name, seed, work)[0]
                 for name, seed, work in (("first", 1, "w1"), ("again", 1, "w2"), ("other", 2, "w1"))}
    return tmp, codes


def _samples(folder):
    return sorted((row["question_id"], row["subject_id"], row["strategy"], tuple(row["session_indices"]),
                   tuple(row["key_concepts"])) for row in load(folder, "questions"))


def test_the_seed_decides_the_question_samples_and_nothing_upstream(seeded):
    tmp, codes = seeded
    assert codes == {"first": 0, "again": 0, "other": 0}
    assert _samples(tmp / "first") == _samples(tmp / "again")
    assert _samples(tmp / "first") != _samples(tmp / "other")
    assert load(tmp / "first", "syllabi") == load(tmp / "other", "syllabi")


def test_show_config_prints_the_rows_of_that_config(seeded, capsys):
    folder = seeded[0] / "first"
    questions = load(folder, "questions")
    assert main(["show", str(folder), "--config", "questions", "--rows", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f'load_dataset("{folder}", "questions"): train {len(questions)} rows, of 2 disciplines'
                              "\n\ntrain: the first 2 rows, a discipline at a time:\n")
    firsts = [next(row for row in questions if row["discipline"] == name)
              for name in dict.fromkeys(row["discipline"] for row in questions)]
    assert [line for line in printed.splitlines() if line.startswith("  question: ")] == \
        [f"  question: {row['question']}" for row in firsts]
    assert f"  question_id: {questions[0]['question_id']}" in printed
    assert "assistant:" not in printed


def test_taxonomy_validate_and_diff_through_the_cli(tmp_path, capsys):
    import yaml

    assert main(["taxonomy", "validate", "taxonomy.yaml"]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("taxonomy.yaml: version 1.0.0, 10 fields, ") and summary.endswith(
        " disciplines, presets: demo, judged, paper, smoke\n")

    data = yaml.safe_load(open("taxonomy.yaml"))
    data["version"] = "1.1.0"
    music = next(sub for field in data["fields"] for sub in field["subfields"] if sub["name"] == "Music and Performing Arts")
    music["disciplines"].append({"name": "Music Cognition", "description": "How people perceive and remember music."})
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["taxonomy", "diff", "taxonomy.yaml", str(tmp_path / "new.yaml")]) == 0
    field = next(field["name"] for field in data["fields"] if music in field["subfields"])
    assert capsys.readouterr().out == (
        "taxonomy 1.0.0 -> 1.1.0\nadded (1):\n"
        f'  + music-cognition: "Music Cognition" in {field} / Music and Performing Arts\n')

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1.0.0\nfields:\n  - name: Science\n    subfields: []\n")
    assert main(["taxonomy", "validate", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"glan: {broken}:4: fields[0].subfields: ")
    assert main(["taxonomy", "diff", "taxonomy.yaml", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"glan: {broken}:4: fields[0].subfields: ")
