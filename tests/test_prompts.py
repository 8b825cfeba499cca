"""A bad prompt file stops `glan build` before its first request with one line naming the file, the line
and what to fix. (A variable a stage does not provide: tests/test_preflight.py.)"""

import shutil
from pathlib import Path

import pytest

from glan.cli import main

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = (REPO / "prompts" / "questions.yaml").read_text()

BAD_PROMPTS = {
    "unknown output model": (
        QUESTIONS.replace("output_model: QuestionText", "output_model: Essay"),
        "5: output_model: expected 'SubjectList', 'Syllabus', 'QuestionText', 'AnswerText', 'JudgeScore', 'HomeworkQuestion', "
        """'Answer' or 'TaxonomyProposal', got text ("Essay"). Use one of those values.""",
    ),
    "YAML error": (
        QUESTIONS.replace("max_tokens: 1024}", "max_tokens: 1024"),
        "7: YAML syntax error: did not find expected ',' or '}' (column 7). Check the indentation, and quote text "
        'that contains ": " or starts with a special character.',
    ),
    "unknown sampling parameter": (
        QUESTIONS.replace("top_p: 0.95", "top_k: 40"),
        '6: params.top_k: unknown key "top_k". Did you mean "top_p"? Allowed keys here: temperature, top_p, '
        "max_tokens, max_completion_tokens, frequency_penalty, presence_penalty.",
    ),
    "sampling parameter out of range": (
        QUESTIONS.replace("temperature: 1.0", "temperature: 3"),
        "6: params.temperature: 3 is too large. It must be at most 2.0.",
    ),
    "template syntax error": (
        QUESTIONS.replace("{{ learned_up_to }}.", "{{ learned_up_to }."),
        "16: user: template syntax error: unexpected '}'. Check the {{ }} and {% %} tags on this line.",
    ),
    "unclosed block": (
        QUESTIONS.replace("{% endif %}", ""),
        "22: user: template syntax error: Unexpected end of template. Jinja was looking for the following tags: "
        "'endif'. The innermost block that needs to be closed is 'if'. Check the {{ }} and {% %} tags on this line.",
    ),
    "not a mapping": (
        "- system\n- user\n",
        "1: the file holds a list, not a prompt: a mapping with output_model, params, system and user. Compare "
        "with the prompt files that `glan init` writes.",
    ),
}


def copy_inputs(tmp_path: Path) -> Path:
    shutil.copy(REPO / "taxonomy.yaml", tmp_path / "taxonomy.yaml")
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    return tmp_path / "prompts" / "questions.yaml"


def build(server, tmp_path: Path) -> int:
    return main(["build", "--taxonomy", str(tmp_path / "taxonomy.yaml"), "--preset", "smoke", "--disciplines",
                 "Organic Chemistry", "--model", "test-model", "--base-url", server.base_url,
                 "--work-dir", str(tmp_path / ".glan"), "--out", str(tmp_path / "dist")])


@pytest.mark.parametrize("text, expected", BAD_PROMPTS.values(), ids=BAD_PROMPTS.keys())
def test_a_bad_prompt_is_one_line_before_any_request(text, expected, openai_server, tmp_path, capsys):
    path = copy_inputs(tmp_path)
    path.write_text(text)
    assert build(openai_server, tmp_path) == 2
    assert capsys.readouterr().err == f"glan: {path}:{expected}\n"
    assert openai_server.stats()["requests"] == 0
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["prompts", "taxonomy.yaml"]


def test_a_prompt_that_is_not_utf8_names_the_line(openai_server, tmp_path, capsys):
    path = copy_inputs(tmp_path)
    latin1 = QUESTIONS.replace("one homework question on", "one homework qu\udce9stion on")  # a Latin-1 "é"
    path.write_bytes(latin1.encode("utf-8", "surrogateescape"))
    assert build(openai_server, tmp_path) == 2
    assert capsys.readouterr().err == (f"glan: {path}:21: not UTF-8 text: byte 0xe9 (column 24) is not valid UTF-8. "
                                       "Save the file with the UTF-8 encoding.\n")
    assert openai_server.stats()["requests"] == 0


def test_a_prompt_naming_another_stages_output_names_both_forms_of_its_own(openai_server, tmp_path, capsys):
    path = copy_inputs(tmp_path)
    path.write_text(QUESTIONS.replace("output_model: QuestionText", "output_model: Syllabus"))
    assert build(openai_server, tmp_path) == 2
    assert capsys.readouterr().err == (f"glan: {path}: output_model: Syllabus is not what the questions stage reads. "
                                       "Write output_model: QuestionText (free text), or HomeworkQuestion (JSON, as "
                                       "glan 0.1 asked).\n")
    assert openai_server.stats()["requests"] == 0
