"""Data written by the embedded model says it is a demo where it is seen: `glan show` and the card.
(The line `glan build` prints is checked with the real model in tests/test_local_e2e.py.)"""

import json

from glan.cli import main
from glan.llm.local_models import LOCAL_MODELS
from tests.test_card import card_of, make_release

NOTICE = ("DEMO DATA: these rows are written by the embedded {label} on a CPU to show that the pipeline runs; they "
          "are not worth training on. For real data, run glan against a real model's endpoint (--base-url, or "
          "OPENAI_API_KEY).")


def written_by(folder, model: str) -> dict:
    manifest = json.loads((folder / "glan_manifest.json").read_text())
    manifest["stages"] = {stage: {"model": model, "params": {"temperature": 1.0}, "prompt_fingerprint": "0123abcd"}
                          for stage in ("subjects", "syllabus", "questions", "answers")}
    (folder / "glan_manifest.json").write_text(json.dumps(manifest))
    (folder / "README.md").write_text(card_of(manifest, folder))
    return manifest


def test_show_and_card_of_embedded_rows_say_demo_data_and_name_the_model(tmp_path, capsys):
    for name, model in LOCAL_MODELS.items():
        folder = tmp_path / name
        make_release(folder)
        manifest = written_by(folder, model.alias)
        notice = NOTICE.format(label=model.label)
        assert main(["show", str(folder), "--rows", "1"]) == 0
        assert capsys.readouterr().out.startswith(f'{notice}\n\nload_dataset("{folder}", "instructions"): ')
        card = (folder / "README.md").read_text()
        assert f"\n# {manifest['card']['title']}\n\n> **{notice}**\n\nInstruction-tuning data made by" in card
        terms = {"smollm2-135m": "[Apache-2.0](https://www.apache.org/licenses/LICENSE-2.0) (SmolLM2)",
                 "gemma3-270m": "[Gemma Terms of Use](https://ai.google.dev/gemma/terms)"}[name]
        assert f"| `{model.alias}` | subjects, syllabus, questions, answers | {terms} |" in card


def test_show_and_card_of_a_real_models_rows_have_no_notice(tmp_path, capsys):
    folder = tmp_path / "dist"
    make_release(folder)  # gpt-4o and gpt-4o-mini
    written_by(folder, "Qwen/Qwen2.5-7B-Instruct")
    assert main(["show", str(folder), "--rows", "1"]) == 0
    assert capsys.readouterr().out.startswith(f'load_dataset("{folder}", "instructions"): ')
    assert "DEMO DATA" not in (folder / "README.md").read_text()
