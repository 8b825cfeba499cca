"""What every real request carries: each shipped prompt rendered for each shipped discipline, under the shipped
settings and each shipped preset, reads as written prose (no doubled punctuation, no "between 5 and 5")."""

import re

import pytest

from glan.config.run import RunSettings
from glan.plan import resolve
from glan.preflight import _as_output
from glan.project import SHIPPED_TAXONOMY
from glan.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy(SHIPPED_TAXONOMY)
# Two marks of punctuation in a row ("mechanics..", "?.", ", ."), an ellipsis aside; a range whose ends are equal.
DOUBLED = re.compile(r"(?<![.])[.,;:!?] ?[.,;:!?](?![.])")
EQUAL_RANGE = re.compile(r"\b(?:between (\d+) and|(\d+) to) (\d+)\b")


def rendered(preset: str | None) -> list[str]:
    """Every message of the first request of every stage, for every shipped discipline."""
    run = resolve(RunSettings(taxonomy=str(SHIPPED_TAXONOMY), preset=preset, model="m", base_url="http://127.0.0.1",
                              progress=False))
    texts = []
    for ref in TAXONOMY.disciplines():
        parents = [vars(ref)]
        for plan in run.stages.values():
            stage = plan.make()
            item = next(iter(stage.inputs(parents)))
            texts += [message["content"] for message in plan.prompt.render(**stage.context(item))]
            parents = stage.parse(item, [_as_output(stage.example)])
    return texts


@pytest.mark.parametrize("preset", [None, *sorted(TAXONOMY.presets)])
def test_every_shipped_prompt_reads_as_prose_for_every_shipped_discipline(preset):
    texts = rendered(preset)
    assert len(texts) >= 2 * 4 * len(TAXONOMY.disciplines())  # a system and a user message per stage
    doubled = sorted({match.group() for text in texts for match in DOUBLED.finditer(text)})
    assert doubled == []
    equal = sorted({match.group() for text in texts for match in EQUAL_RANGE.finditer(text)
                    if (match.group(1) or match.group(2)) == match.group(3)})
    assert equal == []


def test_the_checks_find_what_they_look_for():
    """The patterns above catch the text the shipped prompts used to render."""
    assert DOUBLED.search("from Newton's laws to Lagrangian mechanics..")
    assert DOUBLED.search("Session 1: What is a cell?. Cells are") and not DOUBLED.search("one... two")
    assert EQUAL_RANGE.search("Give between 5 and 5 subjects.").group(1, 3) == ("5", "5")
    assert EQUAL_RANGE.search("into 2 to 2 class sessions").group(2, 3) == ("2", "2")
