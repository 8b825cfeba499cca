"""The dataset card (README.md) of a published folder.

Its YAML is what the Hub and `load_dataset` read: `configs` (data files per split, `instructions` the
default) and `dataset_info` (features read from the parquet shards, rows and bytes per split), written
with datasets' own MetadataConfigs / DatasetInfosDict so the format is the one `push_to_hub` writes.
Its body is what a person reads: what GLAN is, what this version holds, how it was generated, how to
load it, what changed since the previous release, and how to cite the paper.

The card is a pure function of (manifest, previous manifest, folder, repo id): rendering it twice gives
the same bytes, which is what lets `glan push` see that a release is already published.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

DEFAULT_CONFIG = "instructions"
PRETTY_NAME = "GLAN: Generalized Instruction Tuning data"
TAGS = ["synthetic", "glan", "instruction-tuning"]
ROW_COLUMNS = ("subjects", "syllabi", "questions", "instructions")  # per-discipline counts in the manifest

CITATION = """\
@misc{li2024glan,
  title         = {Synthetic Data (Almost) from Scratch: Generalized Instruction Tuning for Language Models},
  author        = {Haoran Li and Qingxiu Dong and Zhengyang Tang and Chaojun Wang and Xingxing Zhang and
                   Haoyang Huang and Shaohan Huang and Xiaolong Huang and Zeqiang Huang and Dongdong Zhang and
                   Yuxian Gu and Xin Cheng and Xun Wang and Si-Qing Chen and Li Dong and Wei Lu and
                   Zhifang Sui and Benyou Wang and Wai Lam and Furu Wei},
  year          = {2024},
  eprint        = {2402.13064},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CL},
  url           = {https://arxiv.org/abs/2402.13064}
}"""

ABOUT = """\
GLAN (Generalized Instruction Tuning; Li et al., 2024, [arXiv:2402.13064](https://arxiv.org/abs/2402.13064))
makes instruction-tuning data from nothing but a taxonomy of human knowledge, the way a school system
does: fields are split into sub-fields and disciplines; a strong model lists the subjects of each
discipline and writes a syllabus per subject (class sessions with key concepts); homework questions are
sampled from one session (basic) or two sessions (harder) and their key concepts; a separate call
answers each question. Every stage is a config of this dataset, and every row carries the ids and names
of its parents (discipline, subject, question) and its provenance (model, prompt fingerprint, taxonomy
version)."""

_SIZE_CATEGORIES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
]


class CardError(ValueError):
    """The folder and its glan_manifest.json disagree; str(e) says where and what to do."""


def render_card(
    manifest: dict[str, Any],
    previous_manifest: dict[str, Any] | None,
    folder: str | Path,
    repo_id: str | None = None,
) -> str:
    """README.md for `folder`; `repo_id` (when known) goes into the loading snippet."""
    folder = Path(folder)
    card_data = DatasetCardData(
        license=manifest.get("license", "other"),
        language=manifest.get("language", ["en"]),
        task_categories=["text-generation"],
        size_categories=[size_category(_default_rows(manifest))],
        tags=TAGS,
        pretty_name=PRETTY_NAME,
    )
    MetadataConfigs(
        {
            name: {
                "data_files": [{"split": split, "path": f"{name}/{split}-*"} for split in config["splits"]],
                **({"default": True} if name == DEFAULT_CONFIG else {}),
            }
            for name, config in manifest["configs"].items()
        }
    ).to_dataset_card_data(card_data)
    DatasetInfosDict(
        {name: _dataset_info(folder, name, config) for name, config in manifest["configs"].items()}
    ).to_dataset_card_data(card_data)
    body = "\n\n".join(
        section
        for section in (
            f"# {PRETTY_NAME}",
            ABOUT,
            _configs_section(manifest),
            _loading_section(manifest, repo_id),
            _taxonomy_section(manifest),
            _generation_section(manifest),
            _stats_section(manifest.get("stats")),
            _changelog_section(manifest, previous_manifest),
            "## Citation\n\n```bibtex\n" + CITATION + "\n```",
        )
        if section
    )
    return str(DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}\n"))


def size_category(rows: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>10B"


def _default_rows(manifest: dict) -> int:
    configs = manifest["configs"]
    name = DEFAULT_CONFIG if DEFAULT_CONFIG in configs else max(configs, key=lambda c: _config_rows(configs[c]))
    return _config_rows(configs[name])


def _config_rows(config: dict) -> int:
    return sum(split["num_rows"] for split in config["splits"].values())


def _dataset_info(folder: Path, name: str, config: dict) -> DatasetInfo:
    """Features from the first shard's schema; rows checked against the shards' parquet metadata."""
    features = None
    splits = SplitDict()
    download_size = 0
    for split_name, split in config["splits"].items():
        rows = 0
        for relative in split["files"]:
            path = folder / relative
            if not path.is_file():
                raise CardError(
                    f"{folder / 'glan_manifest.json'}: configs.{name}.splits.{split_name}.files: {relative} is not in "
                    f"{folder}. Re-export the folder."
                )
            metadata = pq.read_metadata(path)
            shard_features = Features.from_arrow_schema(metadata.schema.to_arrow_schema())
            if features is None:
                features = shard_features
            elif shard_features != features:
                raise CardError(
                    f"{path}: columns differ from the other shards of config {name!r}. Re-export the folder."
                )
            rows += metadata.num_rows
            download_size += path.stat().st_size
        if rows != split["num_rows"]:
            raise CardError(
                f"{folder / 'glan_manifest.json'}: configs.{name}.splits.{split_name}.num_rows is {split['num_rows']} "
                f"but its parquet files hold {rows} rows. Re-export the folder."
            )
        splits.add(SplitInfo(name=split_name, num_bytes=split["num_bytes"], num_examples=rows))
    return DatasetInfo(
        features=features,
        splits=splits,
        download_size=download_size,
        dataset_size=sum(split["num_bytes"] for split in config["splits"].values()),
    )


# -- body sections -----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _configs_section(manifest: dict) -> str:
    rows = []
    for name, config in manifest["configs"].items():
        label = f"`{name}` (default)" if name == DEFAULT_CONFIG else f"`{name}`"
        for split_name, split in config["splits"].items():
            rows.append([label, split_name, split["num_rows"], len(split["files"])])
    return (
        "## Configs\n\n"
        + _table(["config", "split", "rows", "parquet shards"], rows)
        + "\n\n`instructions` is what trainers load: a `messages` column (`user` question, `assistant` answer; "
        "the chat-template convention of TRL) plus the lineage columns. Its `test` split, when present, is the "
        "held-out GLAN-Test set. The other configs are the intermediate stages, for inspection and reuse."
    )


def _loading_section(manifest: dict, repo_id: str | None) -> str:
    tag = f"v{manifest['taxonomy_version']}"
    if repo_id is None:
        call = 'load_dataset("path/to/this/folder", "instructions")'
        note = "Once published, each release is the git tag `v<taxonomy version>` of the dataset repo."
    else:
        call = f'load_dataset("{repo_id}", "instructions", revision="{tag}")'
        note = (
            f"Each release is a git tag `v<taxonomy version>`; pin `revision=\"{tag}\"` to train on exactly "
            "this data. Without `revision` you get the newest release."
        )
    return f"## Loading\n\n```python\nfrom datasets import load_dataset\n\nds = {call}\n```\n\n{note}"


def _taxonomy_section(manifest: dict) -> str:
    disciplines = manifest.get("disciplines", [])
    fields: dict[str, dict[str, Any]] = {}
    for item in disciplines:
        summary = fields.setdefault(
            item["field"], {"subfields": set(), "disciplines": 0, **{column: 0 for column in ROW_COLUMNS}}
        )
        summary["subfields"].add(item["subfield"])
        summary["disciplines"] += 1
        for column in ROW_COLUMNS:
            summary[column] += item.get("rows", {}).get(column, 0)
    subfields = {(item["field"], item["subfield"]) for item in disciplines}
    per_field = _table(
        ["field", "sub-fields", "disciplines", *ROW_COLUMNS],
        [[name, len(s["subfields"]), s["disciplines"], *(s[c] for c in ROW_COLUMNS)] for name, s in fields.items()],
    )
    per_discipline = _table(
        ["field", "sub-field", "discipline", "discipline_id", *ROW_COLUMNS],
        [
            [
                d["field"], d["subfield"], d["discipline"], d["discipline_id"],
                *(d.get("rows", {}).get(column, 0) for column in ROW_COLUMNS),
            ]
            for d in disciplines
        ],
    )
    return (
        f"## Taxonomy v{manifest['taxonomy_version']}\n\n"
        f"{len(fields)} fields, {len(subfields)} sub-fields, {len(disciplines)} disciplines.\n\n"
        f"### Per field\n\n{per_field}\n\n### Per discipline\n\n{per_discipline}"
    )


def _generation_section(manifest: dict) -> str:
    stages = manifest.get("stages") or {}
    if not stages:
        return ""
    rows = [
        [
            stage,
            info.get("model") or "",
            ", ".join(f"{key}={_cell(value)}" for key, value in sorted((info.get("params") or {}).items())),
            f"`{info['prompt_fingerprint']}`" if info.get("prompt_fingerprint") else "",
        ]
        for stage, info in stages.items()
    ]
    return "## Generation\n\n" + _table(["stage", "model", "sampling params", "prompt fingerprint"], rows)


def _stats_section(stats: dict | None) -> str:
    """The manifest's "stats" (builder/quality/stats.py): what the quality steps dropped, and per config
    the rows by level and strategy and the lengths of the texts. Per-discipline counts are in the
    taxonomy tables already."""
    if not stats:
        return ""
    parts = ["## Quality"]
    quality = stats.get("quality") or {}
    if dropped := quality.get("dropped"):
        parts.append("### Rows dropped (questions, before answering)")
        parts.append(_table(["reason", "rows"], [[reason, counts.get("total", 0)] for reason, counts in dropped.items()]))
    if "benchmark_hits" in quality:
        hits = quality["benchmark_hits"]
        parts.append("### Decontamination (questions sharing an n-gram with a benchmark)")
        parts.append(_table(["benchmark", "questions dropped"], [[name, count] for name, count in hits.items()])
                     if hits else "No benchmark configured.")
    configs = stats.get("configs") or {}
    for grouping, title in (("by_level", "Rows by level"), ("by_strategy", "Questions by sampling strategy")):
        having = {name: config[grouping] for name, config in configs.items() if config.get(grouping)}
        if having:
            columns = list(dict.fromkeys(key for counts in having.values() for key in counts))
            parts.append(f"### {title}")
            parts.append(_table(["config", *columns], [[name, *(counts.get(c, 0) for c in columns)]
                                                       for name, counts in having.items()]))
    lengths = [
        [name, column, *(summary.get(key) for key in _LENGTH_KEYS)]
        for name, config in configs.items()
        for column, summary in (config.get("words") or {}).items()
    ]
    if lengths:
        parts.append("### Lengths in words")
        parts.append(_table(["config", "column", *_LENGTH_KEYS], lengths))
    return "\n\n".join(parts) if len(parts) > 1 else ""


_LENGTH_KEYS = ("count", "min", "p50", "p90", "max", "mean")


def _changelog_section(manifest: dict, previous: dict | None) -> str:
    version = manifest["taxonomy_version"]
    if previous is None:
        return f"## Changelog\n\n### v{version}\n\nFirst release."
    before = previous["taxonomy_version"]
    old = {d["discipline_id"]: d for d in previous.get("disciplines", [])}
    new = {d["discipline_id"]: d for d in manifest.get("disciplines", [])}

    def listing(ids: list[str], source: dict) -> str:
        if not ids:
            return " none"
        return "".join(
            f"\n  - {source[i]['discipline']} (`{i}`, {source[i]['field']} / {source[i]['subfield']})" for i in ids
        )

    added = [i for i in new if i not in old]
    removed = [i for i in old if i not in new]
    names = list(dict.fromkeys([*manifest["configs"], *previous.get("configs", {})]))
    rows = []
    for name in names:
        now = _config_rows(manifest["configs"][name]) if name in manifest["configs"] else 0
        then = _config_rows(previous["configs"][name]) if name in previous.get("configs", {}) else 0
        rows.append([name, then, now, f"{now - then:+d}"])
    return (
        f"## Changelog\n\n### v{version} (since v{before})\n\n"
        f"- Disciplines added ({len(added)}):{listing(added, new)}\n"
        f"- Disciplines removed ({len(removed)}):{listing(removed, old)}\n\n"
        + _table(["config", f"rows in v{before}", f"rows in v{version}", "change"], rows)
    )
