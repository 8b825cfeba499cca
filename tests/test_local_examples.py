"""Prompt files' `local_examples` reach the embedded model only, and leave remote prompts untouched."""

import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from glan.llm.cache import cache_key
from glan.prompts import PromptError, load_prompt
from glan.stages import OUTPUTS, STAGE_NAMES
from glan.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
DEMO = load_taxonomy(REPO / "taxonomy.yaml").settings("demo")


def load_prompts(directory: Path, local_examples: bool = False) -> dict:
    return {stage: load_prompt(directory, stage, local_examples) for stage in STAGE_NAMES}


def without_local_examples(tmp_path: Path) -> Path:
    """The shipped prompt files as they would be with no local_examples key."""
    target = tmp_path / "prompts"
    shutil.copytree(REPO / "prompts", target)
    for path in target.glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())
        spec.pop("local_examples", None)  # propose.yaml has none
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return target


def example_context(stage: str) -> dict:
    return yaml.safe_load((REPO / "prompts" / f"{stage}.yaml").read_text())["local_examples"][0]["context"]


def test_every_stage_ships_two_examples_that_its_demo_schema_accepts():
    local = load_prompts(REPO / "prompts", local_examples=True)
    for stage in STAGE_NAMES:
        examples = local[stage].examples
        assert [message["role"] for message in examples] == ["user", "assistant"] * 2
        output_model = OUTPUTS[local[stage].output_model].model(DEMO)
        for reply in examples[1::2]:
            output_model.model_validate_json(reply["content"])


def test_the_embedded_route_asks_for_questions_and_answers_in_their_json_form():
    """A 135M model stops under a JSON grammar; as free text it did not (docs/embedded_models.md)."""
    remote, local = load_prompts(REPO / "prompts"), load_prompts(REPO / "prompts", local_examples=True)
    assert [remote[stage].output_model for stage in STAGE_NAMES] == ["SubjectList", "Syllabus", "QuestionText",
                                                                     "AnswerText", "JudgeScore"]
    assert [local[stage].output_model for stage in STAGE_NAMES] == ["SubjectList", "Syllabus", "HomeworkQuestion",
                                                                    "Answer", "JudgeScore"]


def test_remote_prompts_fingerprints_and_cache_keys_ignore_the_examples(tmp_path):
    shipped = load_prompts(REPO / "prompts")
    stripped = load_prompts(without_local_examples(tmp_path))
    local = load_prompts(REPO / "prompts", local_examples=True)
    for stage in STAGE_NAMES:
        context = example_context(stage) | {"level": "introductory", "subject": "S", "discipline": "D"}
        remote_messages = shipped[stage].render(**context)
        assert shipped[stage].examples == ()
        assert shipped[stage].fingerprint == stripped[stage].fingerprint
        assert remote_messages == stripped[stage].render(**context)
        assert [m["role"] for m in remote_messages] == ["system", "user"]
        key = dict(model="m", params={"temperature": 1.0}, schema=None, sample_index=0, attempt=0)
        assert cache_key(messages=remote_messages, **key) == cache_key(messages=stripped[stage].render(**context), **key)

        local_messages = local[stage].render(**context)
        assert local_messages == [remote_messages[0], *local[stage].examples, remote_messages[1]]
        assert local[stage].fingerprint != shipped[stage].fingerprint
        assert pickle.loads(pickle.dumps(local[stage])).render(**context) == local_messages  # as a Ray worker gets it


def test_an_example_missing_a_template_variable_is_refused_on_the_embedded_route_only(tmp_path):
    prompts = without_local_examples(tmp_path)
    path = prompts / "answers.yaml"
    text = path.read_text() + (
        "local_examples:\n"
        "  - context: {question: Why rivers?}\n"
        "    reply: {answer: Water.}\n"
        "  - context: {topic: rivers}\n"
        "    reply: {answer: Water.}\n")
    path.write_text(text)
    line = text.splitlines().index("  - context: {topic: rivers}") + 1
    with pytest.raises(PromptError) as error:
        load_prompts(prompts, local_examples=True)
    assert str(error.value) == (f"{path}:{line}: local_examples[1].context: 'question' is undefined. Give the "
                                "example every variable the user template uses.")
    assert load_prompts(prompts)["answers"].examples == ()  # a remote route never reads them
