"""The dataset card: YAML the Hub and `load_dataset` accept, counts that match the shards, the sections a
reader needs, and the words taxonomy.yaml's `card:` block gives it.

`make_release` (also used by tests/test_hub.py) writes a small published folder the way the exporter
does: five configs of parquet shards, the glan/ inputs, glan_manifest.json and a README rendered by
render_card.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from glan.publish.card import CITATION, CardError, render_card, size_category
from glan.publish.manifest import Manifest
from glan.publish.hub import changelog
from glan.taxonomy.model import Card

DISCIPLINES = [
    ("Natural Sciences", "Chemistry", "Organic Chemistry", "organic-chemistry"),
    ("Natural Sciences", "Physics", "Classical Mechanics", "classical-mechanics"),
    ("Humanities", "Philosophy", "Ethics", "ethics"),
]
EXTRA_DISCIPLINES = [
    ("Formal Sciences", "Mathematics", "Number Theory", "number-theory"),
    ("Humanities", "History", "Ancient History", "ancient-history"),
]
SUBJECTS_PER_DISCIPLINE = 2
QUESTIONS_PER_SUBJECT = 3


def _rows(disciplines: list[tuple[str, str, str, str]], version: str, answer_suffix: str) -> dict[str, dict[str, list]]:
    """Rows per config and split; every value derives from the discipline, so adding one moves nothing else."""
    out: dict[str, dict[str, list]] = {c: {"train": []} for c in ("taxonomy", "subjects", "syllabi", "questions")}
    out["instructions"] = {"train": [], "test": []}
    for field, subfield, discipline, discipline_id in disciplines:
        lineage = {"discipline_id": discipline_id, "field": field, "subfield": subfield, "discipline": discipline}
        out["taxonomy"]["train"].append({**lineage, "description": f"All about {discipline}."})
        for s in range(SUBJECTS_PER_DISCIPLINE):
            subject = {**lineage, "subject_id": f"{discipline_id}-s{s}", "subject": f"{discipline} {s}", "level": "introductory"}
            out["subjects"]["train"].append({**subject, "subtopics": [f"topic {s}a", f"topic {s}b"], "model": "m"})
            out["syllabi"]["train"].append({
                **subject,
                "sessions": [{"index": i, "title": f"Session {i}", "key_concepts": [f"c{i}", f"d{i}"]} for i in range(2)],
                "model": "m",
            })
            for q in range(QUESTIONS_PER_SUBJECT):
                question = {**subject, "question_id": f"{discipline_id}-s{s}-q{q}", "question": f"Explain {discipline} {s}.{q}?"}
                out["questions"]["train"].append({**question, "key_concepts": ["c0"], "model": "m"})
                messages = [{"role": "user", "content": question["question"]},
                            {"role": "assistant", "content": f"Answer {s}.{q}{answer_suffix}"}]
                split = "test" if q == 0 and s == 0 else "train"
                out["instructions"][split].append({"messages": messages, **question, "taxonomy_version": version})
    return out


def make_release(
    folder: Path,
    version: str = "1.0.0",
    disciplines: list[tuple[str, str, str, str]] = DISCIPLINES,
    answer_suffix: str = "",
    stats: dict | None = None,
    train_shards: int = 2,
    card: dict | None = None,
    inputs: dict[str, str | bytes] | None = None,
) -> dict:
    """Write a published folder (shards, glan/ inputs, manifest, README) and return its manifest.

    `card` overrides fields of taxonomy.yaml's card block; `inputs` are the files under glan/ (path: text or bytes).
    """
    from datasets import Dataset

    folder.mkdir(parents=True, exist_ok=True)
    configs: dict[str, dict] = {}
    for config, splits in _rows(disciplines, version, answer_suffix).items():
        configs[config] = {"splits": {}}
        for split, rows in splits.items():
            # several shards for instructions/train, to publish more than one file per split
            shards = train_shards if (config, split) == ("instructions", "train") else 1
            files, num_bytes = [], 0
            for index in range(shards):
                part = Dataset.from_list(rows[index::shards])
                relative = f"{config}/{split}-{index:05d}-of-{shards:05d}.parquet"
                (folder / config).mkdir(exist_ok=True)
                part.to_parquet(str(folder / relative))
                files.append(relative)
                num_bytes += part.data.nbytes
            configs[config]["splits"][split] = {"num_rows": len(rows), "num_bytes": num_bytes, "files": files}
    if inputs is None:
        inputs = {"glan/taxonomy.yaml": f"version: {version}\n", "glan/prompts/answers.yaml": "user: Answer it.\n"}
    for relative, text in inputs.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(text if isinstance(text, bytes) else text.encode())
    manifest = {
        "taxonomy_version": version,
        "checksums": {
            file: hashlib.sha256((folder / file).read_bytes()).hexdigest()
            for file in [*(file for config in configs.values() for split in config["splits"].values()
                           for file in split["files"]), *inputs]
        },
        "license": "apache-2.0",
        "card": Card(**(card or {})).model_dump(),
        "reproduce": {"glan_version": "0.1.0", "command": "glan build --preset smoke --model gpt-4o-mini",
                      "seed": 2402, "preset": "smoke"},
        "failures": {"subjects": 0, "syllabus": 1, "questions": 0, "answers": 2},
        "disciplines": [
            {"field": f, "subfield": sf, "discipline": d, "discipline_id": i,
             "rows": {"subjects": SUBJECTS_PER_DISCIPLINE, "syllabi": SUBJECTS_PER_DISCIPLINE,
                      "questions": SUBJECTS_PER_DISCIPLINE * QUESTIONS_PER_SUBJECT,
                      "instructions": SUBJECTS_PER_DISCIPLINE * QUESTIONS_PER_SUBJECT}}
            for f, sf, d, i in disciplines
        ],
        "configs": configs,
        "stages": {
            "subjects": {"model": "gpt-4o", "params": {"temperature": 1.0, "top_p": 0.95}, "prompt_fingerprint": "a1b2c3"},
            "answers": {"model": "gpt-4o-mini", "params": {"temperature": 0.7}, "prompt_fingerprint": "d4e5f6"},
        },
    }
    if stats is not None:
        manifest["stats"] = stats
    (folder / "glan_manifest.json").write_text(json.dumps(manifest, indent=2))
    (folder / "README.md").write_text(card_of(manifest, folder))
    return manifest


def card_of(manifest: dict, folder: Path) -> str:
    """The card of a folder whose manifest is `manifest`, as written to its glan_manifest.json."""
    return render_card(Manifest.model_validate(manifest), folder)


def _front_matter(card: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", card, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


SECTIONS = ["## Configs", "## Loading", "## Uses", "### Direct use", "### Out-of-scope use", "## Dataset creation",
            "### Taxonomy v", "### Generation", "### Generator models and their terms", "### Failures",
            "## Limitations and biases", "## How to reproduce or extend this release", "## Citation"]


def test_card_yaml_configs_and_counts(tmp_path):
    manifest = make_release(tmp_path / "dist")
    card = card_of(manifest, tmp_path / "dist")
    meta = _front_matter(card)

    assert meta["license"] == "apache-2.0"
    assert meta["language"] == ["en"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["tags"] == ["synthetic", "glan", "instruction-tuning"]
    assert meta["pretty_name"] == "GLAN: Generalized Instruction Tuning data"
    assert "license_name" not in meta and "license_link" not in meta

    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == {"taxonomy", "subjects", "syllabi", "questions", "instructions"}
    assert [name for name, c in configs.items() if c.get("default")] == ["instructions"]
    assert configs["instructions"]["data_files"] == [
        {"split": "train", "path": "instructions/train-*"},
        {"split": "test", "path": "instructions/test-*"},
    ]
    # every pattern matches exactly the files the manifest lists for that split
    for name, config in manifest["configs"].items():
        for entry in configs[name]["data_files"]:
            listed = config["splits"][entry["split"]]["files"]
            on_disk = [p.relative_to(tmp_path / "dist").as_posix() for p in (tmp_path / "dist").rglob("*.parquet")]
            assert sorted(p for p in on_disk if fnmatch.fnmatch(p, entry["path"])) == sorted(listed)

    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert set(infos) == set(configs)
    assert {s["name"]: s["num_examples"] for s in infos["instructions"]["splits"]} == {"train": 15, "test": 3}
    assert {s["name"]: s["num_examples"] for s in infos["questions"]["splits"]} == {"train": 18}
    assert infos["taxonomy"]["splits"][0]["num_examples"] == 3
    assert infos["instructions"]["splits"][0]["num_bytes"] == manifest["configs"]["instructions"]["splits"]["train"]["num_bytes"]
    feature_names = [f["name"] for f in infos["instructions"]["features"]]
    assert feature_names[0] == "messages" and "question_id" in feature_names and "taxonomy_version" in feature_names
    messages = infos["instructions"]["features"][0]
    assert messages["list"] == [{"name": "role", "dtype": "string"}, {"name": "content", "dtype": "string"}]

    # the body: every section, in order; counts, models and their terms, failures, how to reproduce
    positions = [card.index(title) for title in SECTIONS]
    assert positions == sorted(positions)
    assert card.startswith("---\n") and "\n# GLAN: Generalized Instruction Tuning data\n" in card
    assert "- **Release**: taxonomy version 1.0.0, git tag `v1.0.0`" in card
    assert "2 fields, 3 sub-fields, 3 disciplines." in card
    assert "| Natural Sciences | 2 | 2 | 4 | 4 | 12 | 12 |" in card
    assert "| Humanities | Philosophy | Ethics | ethics | 2 | 2 | 6 | 6 |" in card
    assert "| subjects | gpt-4o | temperature=1.0, top_p=0.95 | `a1b2c3` |" in card
    assert "| `gpt-4o` | subjects | [OpenAI Terms of Use](https://openai.com/policies/terms-of-use/) |" in card
    assert "| syllabus | 1 |" in card and "| answers | 2 |" in card
    assert 'load_dataset("<repo_id>", "instructions", revision="v1.0.0")' in card
    assert "glan pull <repo_id> --revision v1.0.0 glan-1.0.0\ncd glan-1.0.0\nglan build --preset smoke --model gpt-4o-mini" in card
    assert "Made with glan 0.1.0, seed 2402, preset smoke, from these files:" in card
    inputs = manifest["checksums"]
    assert f"| `glan/taxonomy.yaml` | `{inputs['glan/taxonomy.yaml']}` |" in card
    assert f"| `glan/prompts/answers.yaml` | `{inputs['glan/prompts/answers.yaml']}` |" in card
    assert "| `instructions` (default) | train | 15 | 2 |" in card
    assert CITATION in card and "Furu Wei}" in card and "2402.13064" in card
    assert "### Quality" not in card


def test_the_card_block_shapes_the_card(tmp_path):
    card_block = {
        "title": "Homework for robots", "summary": "Questions a school would set, answered by a model.",
        "language": ["en", "fr"], "tags": ["synthetic", "education"],
        "license_name": "glan-data-license", "license_link": "LICENSE.md",
        "uses": "Fine-tuning small tutors.", "out_of_scope_uses": "Grading real students.",
        "limitations": "Nobody checked the answers.",
        "sections": [{"title": "Maintainers", "body": "Ask @someone."}, {"title": "Funding", "body": "None."}],
    }
    manifest = make_release(tmp_path / "dist", card=card_block)
    manifest["license"] = "other"
    card = card_of(manifest, tmp_path / "dist")
    meta = _front_matter(card)

    assert (meta["pretty_name"], meta["language"], meta["tags"]) == ("Homework for robots", ["en", "fr"],
                                                                     ["synthetic", "education"])
    assert (meta["license"], meta["license_name"], meta["license_link"]) == ("other", "glan-data-license", "LICENSE.md")
    assert "\n# Homework for robots\n\nQuestions a school would set, answered by a model.\n" in card
    assert "- **License**: [glan-data-license](LICENSE.md);" in card
    assert "### Direct use\n\nFine-tuning small tutors.\n" in card
    assert "### Out-of-scope use\n\nGrading real students.\n" in card
    assert "## Limitations and biases\n\nNobody checked the answers.\n" in card
    assert card.index("## How to reproduce") < card.index("## Maintainers\n\nAsk @someone.\n") \
        < card.index("## Funding\n\nNone.\n") < card.index("## Citation")
    for title in SECTIONS:
        assert title in card


def test_a_template_file_replaces_glans_card(tmp_path):
    template = ("---\n{{ card_data }}\n---\n\n# {{ title }} ({{ tag }})\n\n{{ configs_table }}\n\n"
                "Load it: `load_dataset(\"{{ repo_id }}\")`; seed {{ reproduce.seed }}; "
                "{{ manifest.disciplines | length }} disciplines.\n")
    manifest = make_release(tmp_path / "dist", card={"template": "card.md", "title": "Mine"},
                            inputs={"glan/taxonomy.yaml": "version: 1.0.0\n", "glan/card.md": template})
    card = card_of(manifest, tmp_path / "dist")

    assert _front_matter(card)["pretty_name"] == "Mine"
    assert card.split("---\n", 2)[2] == (
        "\n# Mine (v1.0.0)\n\n| config | split | rows | parquet shards |\n|---|---|---|---|\n"
        "| `taxonomy` | train | 3 | 1 |\n| `subjects` | train | 6 | 1 |\n| `syllabi` | train | 6 | 1 |\n"
        "| `questions` | train | 18 | 1 |\n| `instructions` (default) | train | 15 | 2 |\n"
        "| `instructions` (default) | test | 3 | 1 |\n\n"
        'Load it: `load_dataset("<repo_id>")`; seed 2402; 3 disciplines.\n')


def test_card_is_deterministic_and_loadable_locally(tmp_path):
    from datasets import load_dataset

    folder = tmp_path / "dist"
    manifest = make_release(folder)
    assert card_of(manifest, folder) == (folder / "README.md").read_text()
    ds = load_dataset(str(folder), "instructions", cache_dir=str(tmp_path / "cache"))
    assert ds["train"].num_rows == 15 and ds["test"].num_rows == 3
    assert load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))["train"].column_names[0] == "messages"


def test_card_quality_section(tmp_path):
    stats = {  # the shape builder/quality/stats.py writes
        "configs": {
            "questions": {"rows": 24, "by_discipline": {"ethics": 6}, "by_level": {"introductory": 24},
                          "by_strategy": {"single": 14, "two": 10},
                          "words": {"question": {"count": 24, "min": 4, "p50": 5, "p90": 6, "max": 7, "mean": 5.2,
                                                 "histogram": {"0-9": 24}}}},
            "instructions/test": {"rows": 4, "by_level": {"introductory": 4}},
        },
        "quality": {
            "dropped": {"exact": {"total": 4, "by_discipline": {"ethics": 4}},
                        "near": {"total": 2, "by_discipline": {"ethics": 2}},
                        "contaminated": {"total": 1, "by_discipline": {"ethics": 1}}},
            "benchmark_hits": {"gsm8k": {"question": 1, "answer": 2}, "local": {"question": 0, "answer": 0}},
        },
        "decontamination": {
            "ngram": 13, "min_words": 8,
            "benchmarks": [
                {"name": "gsm8k", "source": "openai/gsm8k@" + "c" * 40, "configs": ["main"], "splits": ["train", "test"],
                 "text_columns": ["question", "answer"], "items": 17584, "too_short": 3,
                 "hits": {"question": 1, "answer": 2}},
                {"name": "local", "source": "bench/items.jsonl.gz", "configs": [], "splits": [],
                 "text_columns": ["text"], "items": 12, "too_short": 0, "hits": {"question": 0, "answer": 0}},
            ],
            "unchecked": ["math", "humaneval"],
        },
        "held_out": {
            "test_questions": {"ethics": 4, "logic": 2},
            "with_near_twin_elsewhere": {"ethics": 1, "logic": 0},
            "total_with_near_twin_elsewhere": 1,
            "near_twins": {"ethics": {"q-7": [{"discipline_id": "logic", "question_id": "q-9"}]}},
        },
    }
    manifest = make_release(tmp_path / "v2", "1.1.0", DISCIPLINES[1:] + EXTRA_DISCIPLINES, stats=stats)
    card = card_of(manifest, tmp_path / "v2")

    quality = card.split("### Quality", 1)[1].split("## Limitations and biases", 1)[0]
    assert "| reason | rows |\n|---|---|\n| exact | 4 |\n| near | 2 |\n| contaminated | 1 |" in quality
    assert (
        "| benchmark | source | configs | splits | columns | items | too short | question hits | answer hits |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        f"| gsm8k | `openai/gsm8k@{'c' * 40}` | main | train, test | question, answer | 17584 | 3 | 1 | 2 |\n"
        "| local | `bench/items.jsonl.gz` |  |  | text | 12 | 0 | 0 | 0 |\n\n"
        "Unchecked: glan's default list names `math`, `humaneval`, which this build did not check."
    ) in quality
    assert "shares a run of 13 words with a benchmark item, or holds a whole item of 8 to 12 words" in quality
    assert (
        "| discipline | test questions | with a near-twin elsewhere | question_id (twin's discipline) |\n"
        "|---|---|---|---|\n| ethics | 4 | 1 | `q-7` (logic) |\n| logic | 2 | 0 |  |"
    ) in quality
    assert "1 test questions have one" in quality
    assert "| config | introductory |\n|---|---|\n| questions | 24 |\n| instructions/test | 4 |" in quality
    assert "| config | single | two |\n|---|---|---|\n| questions | 14 | 10 |" in quality
    assert "| questions | question | 24 | 4 | 5 | 6 | 7 | 5.2 |" in quality


def test_the_release_commit_describes_what_changed(tmp_path):
    old = make_release(tmp_path / "v1", "1.0.0")
    new = make_release(tmp_path / "v2", "1.1.0", DISCIPLINES[1:] + EXTRA_DISCIPLINES)

    assert changelog(Manifest.model_validate(old), None) == (
        "GLAN taxonomy v1.0.0, the first release.\n\n| config | rows |\n|---|---|\n| taxonomy | 3 |\n"
        "| subjects | 6 |\n| syllabi | 6 |\n| questions | 18 |\n| instructions | 18 |")
    text = changelog(Manifest.model_validate(new), Manifest.model_validate(old))
    assert text.startswith("GLAN taxonomy v1.1.0, since v1.0.0:\n\n- Disciplines added (2):\n"
                           "  - Number Theory (`number-theory`, Formal Sciences / Mathematics)\n"
                           "  - Ancient History (`ancient-history`, Humanities / History)\n"
                           "- Disciplines removed (1):\n"
                           "  - Organic Chemistry (`organic-chemistry`, Natural Sciences / Chemistry)\n")
    assert "| instructions | 18 | 24 | +6 |" in text and "| taxonomy | 3 | 4 | +1 |" in text


def test_card_refuses_a_manifest_that_disagrees_with_the_shards(tmp_path):
    manifest = make_release(tmp_path / "dist")
    manifest["configs"]["questions"]["splits"]["train"]["num_rows"] = 99
    with pytest.raises(CardError, match=r"configs\.questions\.splits\.train\.num_rows is 99 but its parquet files hold 18"):
        card_of(manifest, tmp_path / "dist")


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1_000, 250_000, 10_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "100K<n<1M", "10M<n<100M"]


def test_a_release_of_the_paper_preset_says_how_it_follows_the_paper_and_where_it_differs(tmp_path):
    """The shipped paper preset's models and sampling, at smoke scale: questions by the strong model, answers by the
    cheaper one, and the card says what the paper did and what this release did instead."""
    from tests.helpers import REPO, SMOKE, glan, project
    from tests.servers import start_openai_server

    shipped = yaml.safe_load((REPO / "taxonomy.yaml").read_text())["presets"]["paper"]
    paper_at_smoke_scale = {stage: {**SMOKE.get(stage, {}), **shipped[stage]} for stage in shipped}
    taxonomy = project(tmp_path / "project", paper=paper_at_smoke_scale)
    with start_openai_server(models=["gpt-4o", "gpt-4o-mini"]) as server:
        code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "paper", "--disciplines", "Ethics",
                            "--base-url", server.base_url, "--out", tmp_path / "dist", "--work-dir", tmp_path / ".glan")
        asked = {(record["output"], record["model"]) for record in server.log()}
    assert code == 0, err
    assert asked == {("SubjectList", "gpt-4o"), ("Syllabus", "gpt-4o"), ("question", "gpt-4o"),
                     ("answer", "gpt-4o-mini")}
    card = (tmp_path / "dist" / "README.md").read_text()
    assert "| questions | gpt-4o | max_tokens=1024, temperature=1.0, top_p=0.95 |" in card
    assert "| answers | gpt-4o-mini | max_tokens=2048, temperature=0.7, top_p=0.95 |" in card
    assert ("The GLAN paper wrote the subjects, syllabi and homework questions with GPT-4 (temperature 1.0, top_p "
            "0.95) and the answers with GPT-3.5-turbo (temperature 0.7, top_p 0.95), and asked for questions and "
            "answers as free text, as glan does. This release was built with glan's `paper` preset, which follows "
            "that split with today's models: `gpt-4o` in place of GPT-4 and `gpt-4o-mini` in place of "
            "GPT-3.5-turbo, with the paper's sampling parameters. It differs from the paper in those models") in card
    other = tmp_path / "other"
    make_release(other)
    other_card = (other / "README.md").read_text()
    assert "as glan does. This release" not in other_card and "as glan does.\n" in other_card


def test_the_manifest_of_a_build_cut_short_names_each_written_unit_by_its_own_discipline(tmp_path):
    """An interrupted build writes what was complete: units of some disciplines, not of those before them. Each
    unit's rows are counted under its own discipline, never under the one at its place in the taxonomy."""
    from glan.config.run import RunSettings
    from glan.plan import resolve
    from glan.unit.store import UnitFiles

    run = resolve(RunSettings(preset="smoke", disciplines=("Organic Chemistry", "Linear Algebra"), model="m",
                              base_url="http://127.0.0.1:9/v1", work_dir=str(tmp_path / ".glan")))
    first, second = run.disciplines
    written = UnitFiles(second.discipline_id, "f", True, 4, {"questions": {"train": {"rows": 7}}}, {}, {}, {},
                        tmp_path)
    [entry] = Manifest.of(run, [written], ["questions"]).disciplines
    assert (entry.discipline_id, entry.discipline, entry.rows["questions"]) == \
        (second.discipline_id, second.discipline, 7)


def test_hostile_names_and_ids_stay_inside_their_table_cells(tmp_path):
    # An id comes from the taxonomy (a pulled release supplies it), a benchmark's name and path from settings: a pipe,
    # a line break, a backtick, a link or HTML in one must not break the card's tables or reach it as markup.
    script = "<script>alert(1)</script>"
    discipline = ("Humanities", "Philosophy", f"Eth|ics\n{script}", f"eth|ics-->{script}")
    stats = {
        "decontamination": {
            "ngram": 13, "min_words": 8,
            "benchmarks": [
                {"name": f"evil|name\n{script}", "source": "bench/`x`|y<!-- -->[a](http://evil).jsonl",
                 "configs": ["ma|in"], "splits": ["test"], "text_columns": ["q`uestion`"], "items": 3, "too_short": 0,
                 "hits": {"question": 1, "answer": 0}},
                {"name": "plain", "source": "bench/a|b.jsonl", "configs": [], "splits": [], "text_columns": ["text"],
                 "items": 1, "too_short": 0, "hits": {"question": 0, "answer": 0}},
            ],
            "unchecked": ["ma`th", "<img src=x onerror=alert(1)>"],
        },
        "held_out": {
            "test_questions": {discipline[3]: 2, "logic": 1},
            "with_near_twin_elsewhere": {discipline[3]: 1, "logic": 0},
            "total_with_near_twin_elsewhere": 1,
            "near_twins": {discipline[3]: {"q`7`|[x](http://evil)": [{"discipline_id": "lo-->gic\n|x",
                                                                      "question_id": "q-9"}]}},
        },
    }
    manifest = make_release(tmp_path / "v1", disciplines=[*DISCIPLINES[:2], discipline], stats=stats)
    card = card_of(manifest, tmp_path / "v1")

    escaped_script = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert (f"| Humanities | Philosophy | Eth\\|ics {escaped_script} | eth\\|ics--&gt;{escaped_script} | 2 | 2 | 6 | 6 |"
            in card.splitlines())
    assert (f"| evil\\|name {escaped_script} | bench/\\`x\\`\\|y&lt;!-- --&gt;\\[a\\](http://evil).jsonl | ma\\|in | test "
            "| q\\`uestion\\` | 3 | 0 | 1 | 0 |") in card.splitlines()
    assert "| plain | `bench/a\\|b.jsonl` |  |  | text | 1 | 0 | 0 | 0 |" in card.splitlines()
    assert ("Unchecked: glan's default list names ma\\`th, &lt;img src=x onerror=alert(1)&gt;, which this build did "
            "not check.") in card.splitlines()
    assert (f"| eth\\|ics--&gt;{escaped_script} | 2 | 1 | q\\`7\\`\\|\\[x\\](http://evil) (lo--&gt;gic \\|x) |"
            in card.splitlines())
    assert "| logic | 1 | 0 |  |" in card.splitlines()
    for raw in ("<script", "-->", "<img", "<!--"):
        assert raw not in card
    assert not re.search(r"(?<!\\)\]\(http://evil", card)  # no link: its brackets are escaped
    # Every row of every table has as many cells as its header.
    lines = card.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("|---"):
            width = line.count("|")
            for row in itertools.takewhile(lambda text: text.startswith("|"), lines[index - 1:]):
                assert len(re.split(r"(?<!\\)\|", row)) == width + 1, row
