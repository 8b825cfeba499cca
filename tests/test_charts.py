"""The card's charts: a judged build against the OpenAI test server writes valid PNGs under charts/, each with its
title and one bar per field, discipline or score (counted in the pixels, read back with PIL), links them from the
card by relative paths, and `glan push` uploads them (the Hub test server's files)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from glan.publish.charts import BAR_COLOR, TITLES
from tests.helpers import glan, project
from tests.servers import start_openai_server
from tests.test_hub import _push, client, hub  # noqa: F401 -- the Hub test server and its client, as fixtures
from tests.test_judge import ANSWERS, VERDICTS, judged_preset

DISCIPLINES = "Organic Chemistry,General Chemistry,Linear Algebra"  # three disciplines in two fields
BAR_RGB = tuple(int(BAR_COLOR[index : index + 2], 16) for index in (1, 3, 5))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charts")
    taxonomy = project(tmp / "project", judged=judged_preset())
    with start_openai_server(answer_pool=[answer for answer, _ in ANSWERS.values()],
                             scripted_replies=VERDICTS) as server:
        code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "judged", "--disciplines", DISCIPLINES,
                            "--model", "test-model", "--base-url", server.base_url, "--out", tmp / "dist",
                            "--work-dir", tmp / ".glan")
    assert code == 0, err
    return tmp / "dist"


def bars(path) -> int:
    """The bars of a chart: the most runs of bar-coloured pixels any one row (or column) of the image crosses."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    pixels = image.load()

    def runs(line) -> int:
        inside, count = False, 0
        for pixel in line:
            if pixel == BAR_RGB and not inside:
                count += 1
            inside = pixel == BAR_RGB
        return count

    rows = (runs(pixels[x, y] for x in range(width)) for y in range(height))
    columns = (runs(pixels[x, y] for y in range(height)) for x in range(width))
    return max(*rows, *columns)


def test_every_chart_is_a_png_with_its_title(built):
    manifest = json.loads((built / "glan_manifest.json").read_text())
    charts = sorted(path for path in manifest["checksums"] if path.startswith("charts/"))
    assert charts == sorted(TITLES)  # judged: the scores too
    for relative in charts:
        assert (built / relative).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(built / relative) as image:
            image.verify()
        with Image.open(built / relative) as image:
            assert image.format == "PNG" and image.text["Title"] == TITLES[relative]


def test_one_bar_per_field_per_discipline_and_per_score(built):
    manifest = json.loads((built / "glan_manifest.json").read_text())
    fields = Counter(entry["field"] for entry in manifest["disciplines"])
    assert len(fields) == 2 and len(manifest["disciplines"]) == 3
    assert bars(built / "charts/pairs_per_field.png") == len(fields)
    assert bars(built / "charts/pairs_per_discipline.png") == 3
    scores = {score for score in manifest["stats"]["configs"]["instructions"]["by_score"]}
    assert bars(built / "charts/scores.png") == len(scores) == 2  # the pairs kept: scores 5 and 9 (1-10 drawn)


def test_the_card_links_every_chart_by_its_relative_path(built):
    card = (built / "README.md").read_text()
    for relative, title in TITLES.items():
        assert f"![{title}]({relative})" in card


def test_glan_push_uploads_the_charts(built, hub, client):  # noqa: F811
    repo = "glan-tester/charts"
    (push,) = client(_push(built, repo))
    assert push["exit"] == 0, push["err"]
    published = hub.files(repo)
    for relative in TITLES:
        assert published[relative] == (built / relative).read_bytes()


def test_a_chart_the_manifest_does_not_list_is_refused_and_nothing_is_sent(built, hub, client, tmp_path):  # noqa: F811
    import shutil

    folder = tmp_path / "dist"
    shutil.copytree(built, folder)
    (folder / "charts" / "extra.png").write_bytes((built / "charts" / "scores.png").read_bytes())
    repo = "glan-tester/charts-extra"
    (push,) = client(_push(folder, repo))
    assert push["exit"] == 2
    assert push["err"] == (f"glan: {folder / 'charts' / 'extra.png'}: not listed in {folder / 'glan_manifest.json'}, "
                           "so it is not part of this release. Delete it or re-export the folder.\n")
    assert ("dataset", repo) not in hub.state.repos  # refused before the repo was made


def test_a_release_without_the_scores_chart_takes_it_off_the_hub(built, hub, client, tmp_path):  # noqa: F811
    """A judged release, then one without the judge (no charts/scores.png): the second push deletes the chart the
    first uploaded, as it deletes a config's stale shards; and the judged release's version, pushed again without the
    chart, is different content, not "already published"."""
    import shutil

    unjudged, same_version = tmp_path / "unjudged", tmp_path / "same-version"
    manifest = json.loads((built / "glan_manifest.json").read_text())
    del manifest["checksums"]["charts/scores.png"]
    for folder, version in ((unjudged, f"{manifest['taxonomy_version']}.1"), (same_version, None)):
        shutil.copytree(built, folder)
        (folder / "charts" / "scores.png").unlink()
        (folder / "glan_manifest.json").write_text(
            json.dumps({**manifest, "taxonomy_version": version or manifest["taxonomy_version"]}, indent=2))
    repo = "glan-tester/charts-unjudged"
    judged, again, later = client(_push(built, repo), _push(same_version, repo), _push(unjudged, repo))
    assert judged["exit"] == 0, judged["err"]
    assert again["exit"] == 2
    assert again["err"].startswith(f"glan: v{manifest['taxonomy_version']} is already published on {repo} with "
                                   "different content (1 files differ, 1 would be deleted, e.g. charts/scores.png).")
    assert later["exit"] == 0, later["err"]
    published = hub.files(repo)
    assert "charts/scores.png" not in published
    assert sorted(path for path in published if path.startswith("charts/")) == sorted(
        path for path in TITLES if path != "charts/scores.png")


def test_a_name_with_dollar_signs_is_drawn_as_its_text_not_as_maths(tmp_path, monkeypatch):
    """A pulled taxonomy is untrusted: a discipline named `A $\\frac{x$ B` made mathtext raise after every request
    was paid, and a field named `$x$` was drawn as maths. Every tick label is plain text, upright bars' and lying ones'."""
    from matplotlib.figure import Figure

    from glan.publish.charts import write_charts
    from glan.publish.manifest import DisciplineEntry

    drawn = {}
    savefig = Figure.savefig

    def keep(figure, path, **kwargs):
        drawn[path.name] = [label for axes in figure.axes for label in [*axes.get_xticklabels(),
                                                                        *axes.get_yticklabels()]]
        return savefig(figure, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    names = {"a": ("$x$", "A $\\frac{x$ B"), "b": ("$y$", "$\\alpha$")}
    disciplines = [DisciplineEntry(field=field, subfield="s", discipline=name, discipline_id=key,
                                   rows={"instructions": 3}) for key, (field, name) in names.items()]
    assert write_charts(tmp_path, disciplines, None) == ["charts/pairs_per_field.png",
                                                         "charts/pairs_per_discipline.png"]
    for chart, shown in (("pairs_per_field.png", ["$x$", "$y$"]),  # short: bars upright
                         ("pairs_per_discipline.png", ["A $\\frac{x$ B", "$\\alpha$"])):
        assert (tmp_path / "charts" / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        labels = [label for label in drawn[chart] if label.get_text() in shown]
        assert sorted(label.get_text() for label in labels) == sorted(shown)
        assert not any(label.get_parse_math() for label in labels)
