"""The CLI: bad input gets one clear message, exit code 2 and nothing written; show; the summary."""

import json

from builder.cli import main
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
    assert "--disciplines: no discipline named alchemy" in capsys.readouterr().err
    assert main(["build", "--configs", "answers", "--model", "m"]) == 2
    assert "--configs: unknown config answers; choose from taxonomy, subjects" in capsys.readouterr().err


def test_show_prints_rows_read_back_with_load_dataset(openai_server, tmp_path, capsys):
    code, out, _ = build(openai_server, tmp_path)
    assert code == 0
    capsys.readouterr()
    assert main(["show", str(out), "--rows", "2"]) == 0
    printed = capsys.readouterr().out
    first = load(out, "instructions")[0]
    assert printed.startswith(f'load_dataset("{out}", "instructions"): {len(load(out, "instructions"))} rows; the first 2:')
    assert f"[{first['discipline']} / {first['subject']}]" in printed
    assert "  user: " in printed and "  assistant: " in printed


def test_show_without_a_build_says_what_to_do(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nothing")]) == 2
    assert "no built dataset here. Run `glan build --out" in capsys.readouterr().err


def test_a_prompt_file_naming_an_unknown_output_model_is_refused(tmp_path, capsys):
    import shutil

    shutil.copy("taxonomy.yaml", tmp_path / "taxonomy.yaml")
    shutil.copytree("prompts", tmp_path / "prompts")
    prompt = tmp_path / "prompts" / "questions.yaml"
    prompt.write_text(prompt.read_text().replace("output_model: HomeworkQuestion", "output_model: Essay"))
    code = main(["build", "--taxonomy", str(tmp_path / "taxonomy.yaml"), "--model", "m",
                 "--work-dir", str(tmp_path / ".glan"), "--out", str(tmp_path / "dist")])
    assert code == 2
    assert capsys.readouterr().err.startswith(
        f"glan: {prompt}: output_model: Input should be 'SubjectList', 'Syllabus', 'HomeworkQuestion', 'Answer' or "
        "'TaxonomyProposal'. Keys: output_model (one of SubjectList, Syllabus, HomeworkQuestion, Answer, "
        "TaxonomyProposal), params, system, user.")
    assert not (tmp_path / "dist").exists()


def test_the_summary_lists_what_the_quality_steps_dropped(openai_server, tmp_path, capsys):
    code, out, _ = build(openai_server, tmp_path)
    assert code == 0
    stats = json.loads((out / "stats.json").read_text())["quality"]["dropped"]
    dropped = ", ".join(f"{reason} {entry['total']:,}" for reason, entry in stats.items())
    test_rows = len(load(out, "instructions", "test"))
    assert test_rows == len(DISCIPLINES)  # the smoke preset holds out one question per discipline
    assert (f"quality: dropped {dropped}; held-out test split {test_rows:,} rows (details in stats.json)"
            in capsys.readouterr().err)
