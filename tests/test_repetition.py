"""Repetition and diversity figures through `glan build`: the test server serves questions most of which open the
same way, and the figures in stats.json and the card are checked against the rows read back."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from tests.helpers import build_args, glan, project, rows
from tests.servers import start_openai_server

QUESTIONS = [
    "Explain why the boiling point of water falls as the altitude of a mountain village rises above the sea",
    "Explain why the sky looks blue at noon but red and orange when the sun sets over the ocean horizon",
    "Explain why the moon always shows the same face to the Earth as it travels along its monthly orbit",
    "Describe how a refrigerator moves heat from its cold interior into the warmer air of the kitchen",
]
DISCIPLINES = {"organic-chemistry": "Organic Chemistry", "linear-algebra": "Linear Algebra"}


def opening(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text).casefold().split()[:3])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repetition")
    taxonomy = project(tmp / "project")
    with start_openai_server(question_pool=QUESTIONS) as server:
        code, _, err = glan(*build_args(server, tmp / "dist", tmp / ".glan", disciplines=",".join(DISCIPLINES.values()),
                                        taxonomy=taxonomy))
    assert code == 0, err
    out = tmp / "dist"
    splits = json.loads((out / "glan_manifest.json").read_text())["configs"]["instructions"]["splits"]
    return {"out": out, "pairs": rows(out, "instructions", tuple(splits)),
            "stats": json.loads((out / "stats.json").read_text()), "card": (out / "README.md").read_text()}


def test_each_discipline_s_top_opening_and_share_are_those_of_its_rows(built):
    repetition = built["stats"]["repetition"]
    assert set(repetition["by_discipline"]) == set(DISCIPLINES)
    for discipline_id in DISCIPLINES:
        questions = [pair["messages"][0]["content"] for pair in built["pairs"] if pair["discipline_id"] == discipline_id]
        (top, count), = Counter(map(opening, questions)).most_common(1)
        figures = repetition["by_discipline"][discipline_id]["question"]
        assert figures["rows"] == len(questions)
        assert figures["top_openings"][0] == {"opening": top, "rows": count, "share": round(count / len(questions), 4)}
        assert top == "explain why the"
        assert 0 < figures["distinct"]["distinct_1"] <= 1 and 0 < figures["distinct"]["distinct_2"] <= 1
    overall = repetition["overall"]["question"]
    total = Counter(map(opening, (pair["messages"][0]["content"] for pair in built["pairs"])))
    assert overall["rows"] == len(built["pairs"])
    assert overall["top_openings"][0]["rows"] == total["explain why the"]


def test_a_discipline_above_the_share_is_flagged_in_the_card(built):
    repetition = built["stats"]["repetition"]
    assert repetition["flag_opening_share"] == 0.2  # taxonomy.yaml's
    assert all("question" in repetition["flagged"][discipline_id] for discipline_id in DISCIPLINES)
    card = built["card"]
    assert "### Repetition and diversity" in card
    assert "**Flagged: 2 of 2 disciplines** open more than 20% of their texts the same way" in card
    share = repetition["by_discipline"]["linear-algebra"]["question"]["top_openings"][0]["share"]
    assert re.search(rf"\| Linear Algebra \| explain why the \({share:.1%}\) \|.*\| flagged \|", card)
