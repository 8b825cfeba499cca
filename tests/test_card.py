"""The dataset card: YAML the Hub and `load_dataset` accept, counts that match the shards, a changelog.

`make_release` (also used by tests/test_hub.py) writes a small published folder the way the exporter
does: five configs of parquet shards, glan_manifest.json and a README rendered by render_card.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from builder.publish.card import CITATION, CardError, render_card, size_category

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
) -> dict:
    """Write a published folder (shards, manifest, README) and return its manifest."""
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
    manifest = {
        "taxonomy_version": version,
        "checksums": {
            file: hashlib.sha256((folder / file).read_bytes()).hexdigest()
            for config in configs.values() for split in config["splits"].values() for file in split["files"]
        },
        "license": "apache-2.0",
        "language": ["en"],
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
    (folder / "README.md").write_text(render_card(manifest, None, folder))
    return manifest


def _front_matter(card: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", card, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


def test_card_yaml_configs_and_counts(tmp_path):
    manifest = make_release(tmp_path / "dist")
    card = render_card(manifest, None, tmp_path / "dist", repo_id="someone/glan")
    meta = _front_matter(card)

    assert meta["license"] == "apache-2.0"
    assert meta["language"] == ["en"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["tags"] == ["synthetic", "glan", "instruction-tuning"]
    assert meta["pretty_name"]

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

    # the body: version, per-field and per-discipline counts, models, loading, citation, first release
    assert "## Taxonomy v1.0.0" in card
    assert "2 fields, 3 sub-fields, 3 disciplines." in card
    assert "| Natural Sciences | 2 | 2 | 4 | 4 | 12 | 12 |" in card
    assert "| Humanities | Philosophy | Ethics | ethics | 2 | 2 | 6 | 6 |" in card
    assert "| subjects | gpt-4o | temperature=1.0, top_p=0.95 | `a1b2c3` |" in card
    assert 'load_dataset("someone/glan", "instructions", revision="v1.0.0")' in card
    assert "| `instructions` (default) | train | 15 | 2 |" in card
    assert "First release." in card
    assert CITATION in card and "Furu Wei}" in card and "2402.13064" in card
    assert "## Quality" not in card


def test_card_is_deterministic_and_loadable_locally(tmp_path):
    from datasets import load_dataset

    folder = tmp_path / "dist"
    manifest = make_release(folder)
    assert render_card(manifest, None, folder) == (folder / "README.md").read_text()
    ds = load_dataset(str(folder), "instructions", cache_dir=str(tmp_path / "cache"))
    assert ds["train"].num_rows == 15 and ds["test"].num_rows == 3
    assert load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))["train"].column_names[0] == "messages"


def test_card_changelog_and_stats(tmp_path):
    old = make_release(tmp_path / "v1", "1.0.0")
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
            "benchmark_hits": {"gsm8k": 1, "mmlu": 0},
        },
    }
    new = make_release(tmp_path / "v2", "1.1.0", DISCIPLINES[1:] + EXTRA_DISCIPLINES, stats=stats)
    card = render_card(new, old, tmp_path / "v2", repo_id="someone/glan")

    assert "### v1.1.0 (since v1.0.0)" in card
    changelog = card.split("## Changelog", 1)[1]
    assert "Disciplines added (2):" in changelog
    assert "Number Theory (`number-theory`, Formal Sciences / Mathematics)" in changelog
    assert "Ancient History (`ancient-history`, Humanities / History)" in changelog
    assert "- Disciplines removed (1):\n  - Organic Chemistry" in changelog and "Organic Chemistry (`organic-chemistry`" in changelog
    assert "| instructions | 18 | 24 | +6 |" in changelog
    assert "| taxonomy | 3 | 4 | +1 |" in changelog
    quality = card.split("## Quality", 1)[1].split("## Changelog", 1)[0]
    assert "| reason | rows |\n|---|---|\n| exact | 4 |\n| near | 2 |\n| contaminated | 1 |" in quality
    assert "| benchmark | questions dropped |\n|---|---|\n| gsm8k | 1 |\n| mmlu | 0 |" in quality
    assert "| config | introductory |\n|---|---|\n| questions | 24 |\n| instructions/test | 4 |" in quality
    assert "| config | single | two |\n|---|---|---|\n| questions | 14 | 10 |" in quality
    assert "| questions | question | 24 | 4 | 5 | 6 | 7 | 5.2 |" in quality


def test_card_refuses_a_manifest_that_disagrees_with_the_shards(tmp_path):
    manifest = make_release(tmp_path / "dist")
    manifest["configs"]["questions"]["splits"]["train"]["num_rows"] = 99
    with pytest.raises(CardError, match=r"configs\.questions\.splits\.train\.num_rows is 99 but its parquet files hold 18"):
        render_card(manifest, None, tmp_path / "dist")


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1_000, 250_000, 10_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "100K<n<1M", "10M<n<100M"]
