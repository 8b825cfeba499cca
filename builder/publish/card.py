"""The dataset card (README.md) of a published folder, rendered once, when the folder is built.

Its YAML is what the Hub and `load_dataset` read: `configs` (data files per split, `instructions` the
default) and `dataset_info` (features read from the parquet shards, rows and bytes per split), written
with datasets' own MetadataConfigs / DatasetInfosDict so the format is the one `push_to_hub` writes.
Its body is what a person reads: the release, its configs, how to load it, uses and out-of-scope uses,
how it was made (taxonomy, models and their terms, failures, quality), limitations and biases, how to
reproduce or extend it, and the paper to cite. taxonomy.yaml's `card:` block supplies the title,
summary, language, tags, license name and link, the texts of uses and limitations, more sections, or
a whole template of its own (card.md beside this file is glan's; what a template may hold is checked when the
taxonomy loads: builder/taxonomy/card_template.py).

The card is a pure function of (manifest, folder): rendering it twice gives the same bytes. The repo
id is not known yet, so the card says `<repo_id>` where it goes and `glan push` fills it in; the rest
of README.md, edits included, is published as the folder holds it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import pyarrow.parquet as pq
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ..errors import UserError
from ..llm.local_models import demo_notice
from ..plan import Run
from ..project import INPUTS_DIR
from ..quality.repetition import NGRAM_ROWS
from ..stages import CONFIGS, DEFAULT_CONFIG, TAXONOMY
from ..taxonomy.card_template import SANDBOX, CardTemplateError
from ..templates import error_line
from ..wording import counted
from .charts import TITLES as CHART_TITLES
from .charts import scores_kept
from .manifest import ConfigEntry, Manifest

DEFAULT_TEMPLATE = Path(__file__).parent / "card.md"
REPO_ID = "<repo_id>"  # written where the repo id goes; `glan push` replaces it, and nothing else in the card
ROW_COLUMNS = tuple(config for config in CONFIGS if config != TAXONOMY)  # per-discipline counts in the manifest
# The terms that bind what a model family generates; other models: "their own license and terms".
MODEL_TERMS = (
    (("gpt-", "o1", "o3", "o4", "chatgpt"), "[OpenAI Terms of Use](https://openai.com/policies/terms-of-use/)"),
    (("gemma",), "[Gemma Terms of Use](https://ai.google.dev/gemma/terms)"),
    (("smollm2",), "[Apache-2.0](https://www.apache.org/licenses/LICENSE-2.0) (SmolLM2)"),
)

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
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
]


class CardError(UserError):
    """The folder and its glan_manifest.json disagree; str(e) says where and what to do."""


def render_card(manifest: Manifest, folder: str | Path) -> str:
    """README.md for `folder`, from its manifest, its parquet shards and its card template (the folder's copy)."""
    folder = Path(folder)
    template = manifest.card.template
    return _render(folder / INPUTS_DIR / template if template else DEFAULT_TEMPLATE, manifest, folder)


def check_card_template(run: Run, configs: list[str]) -> None:
    """The run's card template rendered with the manifest of a build of it before it made any row (no shard is
    read), so that a template that fails, or reaches for what the sandbox refuses, fails before any request."""
    template = run.taxonomy.card.template
    path = Path(run.settings.taxonomy).parent / template if template else DEFAULT_TEMPLATE
    _render(path, Manifest.of(run, [], configs), path.parent)


def _render(path: Path, manifest: Manifest, folder: Path) -> str:
    """What DatasetCard.from_template does, in the sandbox: the card data as YAML and field by field, then ours. A
    template that fails is a CardTemplateError naming the template's file and line."""
    data = card_data(manifest, folder)
    card = manifest.card.model_dump()
    as_written = manifest.model_dump(mode="json")  # the manifest as glan_manifest.json holds it
    if manifest.stats is None:  # a manifest without stats (the template check's) shows none
        del as_written["stats"]
    variables = {
        **data.to_dict(),
        **{key: card[key] for key in ("title", "summary", "uses", "out_of_scope_uses", "limitations", "sections")},
        "demo_notice": _demo_notice(manifest),
        "version": manifest.taxonomy_version,
        "tag": f"v{manifest.taxonomy_version}",
        "repo_id": REPO_ID,
        "about": ABOUT,
        "configs_table": _configs_table(manifest),
        "taxonomy_tables": _taxonomy_tables(manifest),
        "generation_table": _generation_table(manifest),
        "models_table": _models_table(manifest),
        "failures_table": _failures_table(manifest),
        "quality_section": _quality_section(manifest.stats),
        "judge_section": _judge_section(manifest),
        "charts_section": _charts_section(manifest),
        "repetition_section": _repetition_section(manifest),
        "reproduce": as_written["reproduce"],
        "prompt_files_table": _inputs_table(manifest),
        "citation": CITATION,
        "manifest": as_written,
    }
    try:
        text = SANDBOX.from_string(path.read_text(encoding="utf-8")).render(card_data=data.to_yaml(), **variables)
    except jinja2.TemplateError as error:
        raise CardTemplateError(
            str(path),
            error_line(error),
            "",
            f"{(error.message or '').rstrip('.')}. A card template "
            "renders in a sandbox with only the variables docs/card.md lists (docs/security.md).",
        ) from None
    return str(DatasetCard(text)).rstrip("\n") + "\n"


def _demo_notice(manifest: Manifest) -> str:
    """The banner of a folder whose rows the embedded model wrote; empty for any other."""
    writer = manifest.embedded_model
    return demo_notice(writer) if writer else ""


def card_data(manifest: Manifest, folder: Path) -> DatasetCardData:
    """The YAML header: license, language, tags, name, and the `configs` and `dataset_info` load_dataset reads."""
    card = manifest.card
    data = DatasetCardData(
        license=manifest.license,
        license_name=card.license_name,
        license_link=card.license_link,
        language=list(card.language),
        task_categories=["text-generation"],
        size_categories=[size_category(_default_rows(manifest))],
        tags=list(card.tags),
        pretty_name=card.title,
    )
    MetadataConfigs(
        {
            name: {
                "data_files": [{"split": split, "path": f"{name}/{split}-*"} for split in config.splits],
                **({"default": True} if name == DEFAULT_CONFIG else {}),
            }
            for name, config in manifest.configs.items()
        }
    ).to_dataset_card_data(data)
    DatasetInfosDict(
        {name: _dataset_info(folder, name, config) for name, config in manifest.configs.items()}
    ).to_dataset_card_data(data)
    return data


def size_category(rows: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>10B"


def _default_rows(manifest: Manifest) -> int:
    configs = manifest.configs
    if not configs:  # every item of the run failed
        return 0
    name = DEFAULT_CONFIG if DEFAULT_CONFIG in configs else max(configs, key=lambda c: configs[c].rows)
    return configs[name].rows


def _dataset_info(folder: Path, name: str, config: ConfigEntry) -> DatasetInfo:
    """Features from the first shard's schema; rows checked against the shards' parquet metadata."""
    schema = None
    splits = SplitDict()
    download_size = 0
    for split_name, split in config.splits.items():
        rows = 0
        for relative in split.files:
            path = folder / relative
            if not path.is_file():
                raise CardError(
                    f"{folder / 'glan_manifest.json'}: configs.{name}.splits.{split_name}.files: {relative} is not in "
                    f"{folder}. Re-export the folder."
                )
            metadata = pq.read_metadata(path)
            # Columns and types compared, Features made once: a folder has a shard per discipline, and making Features
            # costs a millisecond a shard. (Not the metadata: shards written by other datasets versions may word it
            # differently.)
            shard_schema = metadata.schema.to_arrow_schema()
            if schema is None:
                schema = shard_schema
            elif not shard_schema.equals(schema):
                raise CardError(
                    f"{path}: columns differ from the other shards of config {name!r}. Re-export the folder."
                )
            rows += metadata.num_rows
            download_size += path.stat().st_size
        if rows != split.num_rows:
            raise CardError(
                f"{folder / 'glan_manifest.json'}: configs.{name}.splits.{split_name}.num_rows is {split.num_rows} "
                f"but its parquet files hold {rows} rows. Re-export the folder."
            )
        splits.add(SplitInfo(name=split_name, num_bytes=split.num_bytes, num_examples=rows))
    return DatasetInfo(
        features=Features.from_arrow_schema(schema) if schema is not None else None,
        splits=splits,
        download_size=download_size,
        dataset_size=sum(split.num_bytes for split in config.splits.values()),
    )


# -- body sections -----------------------------------------------------------------------------------


class _Markdown(str):
    """A cell already written as markdown, the values in it escaped (_cell, _code): markdown_table keeps it as is."""


# Names and ids come from a taxonomy (a pulled release supplies one), settings and stats: what in them would end a
# cell (a pipe, a line break) or start markup (a backslash escape, a code span, a link, HTML, the end of an HTML
# comment) is escaped, to show as written.
_CELL_ESCAPES = str.maketrans(
    {"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]", "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " "}
)
# What a code span cannot show safely: no escape works inside one (a pipe aside, in a table), and it ends at a backtick.
_NOT_IN_CODE = re.compile(r"[`<>\\\r\n]")


def _cell(value: Any) -> str:
    """`value` as the text of a table cell (or of a sentence): escaped, unless it is _Markdown already."""
    if isinstance(value, _Markdown):
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.translate(_CELL_ESCAPES)


def _code(value: str) -> _Markdown:
    """`value` as a code span in a table cell; one holding what a code span cannot show safely, as escaped text."""
    if _NOT_IN_CODE.search(value):
        return _Markdown(_cell(value))
    return _Markdown("`" + value.replace("|", "\\|") + "`")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(name) for name in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _configs_table(manifest: Manifest) -> str:
    rows = []
    for name, config in manifest.configs.items():
        label = _Markdown(f"{_code(name)} (default)") if name == DEFAULT_CONFIG else _code(name)
        for split_name, split in config.splits.items():
            rows.append([label, split_name, split.num_rows, len(split.files)])
    return markdown_table(["config", "split", "rows", "parquet shards"], rows)


def _taxonomy_tables(manifest: Manifest) -> str:
    disciplines = manifest.disciplines
    fields: dict[str, dict[str, Any]] = {}
    for item in disciplines:
        summary = fields.setdefault(
            item.field, {"subfields": set(), "disciplines": 0, **{column: 0 for column in ROW_COLUMNS}}
        )
        summary["subfields"].add(item.subfield)
        summary["disciplines"] += 1
        for column in ROW_COLUMNS:
            summary[column] += item.rows.get(column, 0)
    subfields = {(item.field, item.subfield) for item in disciplines}
    per_field = markdown_table(
        ["field", "sub-fields", "disciplines", *ROW_COLUMNS],
        [[name, len(s["subfields"]), s["disciplines"], *(s[c] for c in ROW_COLUMNS)] for name, s in fields.items()],
    )
    per_discipline = markdown_table(
        ["field", "sub-field", "discipline", "discipline_id", *ROW_COLUMNS],
        [
            [
                d.field,
                d.subfield,
                d.discipline,
                d.discipline_id,
                *(d.rows.get(column, 0) for column in ROW_COLUMNS),
            ]
            for d in disciplines
        ],
    )
    return (
        f"{counted(len(fields), 'field')}, {counted(len(subfields), 'sub-field')}, "
        f"{counted(len(disciplines), 'discipline')}.\n\n"
        f"#### Per field\n\n{per_field}\n\n#### Per discipline\n\n{per_discipline}"
    )


def _generation_table(manifest: Manifest) -> str:
    rows = [
        [
            stage,
            info.model,
            _Markdown(", ".join(f"{_cell(key)}={_cell(value)}" for key, value in sorted(info.params.items()))),
            _code(info.prompt_fingerprint) if info.prompt_fingerprint else "",
        ]
        for stage, info in manifest.stages.items()
    ]
    header = ["stage", "model", "sampling params", "prompt fingerprint"]
    if any(info.tokens for info in manifest.stages.values()):
        header += ["tokens in", "of them cached", "tokens out"]
        for row, info in zip(rows, manifest.stages.values(), strict=True):
            tokens = info.tokens
            row += [f"{tokens.prompt:,}", f"{tokens.cached:,}", f"{tokens.completion:,}"] if tokens else ["", "", ""]
    table = markdown_table(header, rows)
    return f"{table}\n\n{_paper_note(manifest)}"


PAPER = (
    "The GLAN paper wrote the subjects, syllabi and homework questions with GPT-4 (temperature 1.0, top_p "
    "0.95) and the answers with GPT-3.5-turbo (temperature 0.7, top_p 0.95), and asked for questions and "
    "answers as free text, as glan does."
)


def _paper_note(manifest: Manifest) -> str:
    """What the paper did and, for a release of the `paper` preset, where the release differs from it."""
    if manifest.reproduce is None or manifest.reproduce.preset != "paper":
        return PAPER
    stages = manifest.stages

    def models(*names: str) -> str:
        return " and ".join(
            f"`{model}`" for model in dict.fromkeys(stages[name].model for name in names if name in stages)
        )

    return (
        f"{PAPER} This release was built with glan's `paper` preset, which follows that split with today's models: "
        f"{models('subjects', 'syllabus', 'questions')} in place of GPT-4 and {models('answers')} in place of "
        "GPT-3.5-turbo, with the paper's sampling parameters. It differs from the paper in those models, in the "
        "wording of the prompts (glan's own, under `glan/prompts/`), and in the subjects and syllabi, which are "
        "asked for as JSON so that their fields can be read."
    )


def _models_table(manifest: Manifest) -> str:
    stages_of: dict[str, list[str]] = {}
    for stage, info in manifest.stages.items():
        stages_of.setdefault(info.model, []).append(stage)
    return markdown_table(
        ["model", "stages", "terms"],
        [[_code(model), ", ".join(stages), _Markdown(_terms(model))] for model, stages in stages_of.items()],
    )


def _terms(model: str) -> str:
    name = model.lower().rsplit("/", 1)[-1]
    for prefixes, terms in MODEL_TERMS:
        if name.startswith(prefixes):
            return terms
    return "the model's own license and terms of use"


def _failures_table(manifest: Manifest) -> str:
    failures = manifest.failures
    return (
        markdown_table(["stage", "items without a valid output"], [[stage, count] for stage, count in failures.items()])
        + "\n\nAn item fails after its retries all gave output that is not valid JSON or breaks the schema "
        "(subjects, syllabi, the judge's verdicts), is too short or too long (questions, answers), holds a control "
        "character, is empty or was cut off; it yields no row (a pair the judge gave no valid verdict keeps null "
        "scores)."
    )


def _inputs_table(manifest: Manifest) -> str:
    inputs = sorted(path for path in manifest.checksums if path.startswith(f"{INPUTS_DIR}/"))
    return markdown_table(["file", "sha256"], [[_code(path), _code(manifest.checksums[path])] for path in inputs])


def _quality_section(stats: dict | None) -> str:
    """The manifest's "stats" (builder/quality/stats.py): what the quality steps dropped, and per config
    the rows by level and strategy and the lengths of the texts. Per-discipline counts are in the
    taxonomy tables already."""
    if not stats:
        return ""
    parts = ["### Quality"]
    quality = stats.get("quality") or {}
    if dropped := quality.get("dropped"):
        parts.append("#### Rows dropped")
        parts.append(
            markdown_table(["reason", "rows"], [[reason, counts.get("total", 0)] for reason, counts in dropped.items()])
        )
    if decontamination := stats.get("decontamination"):
        parts += _decontamination_parts(decontamination)
    if held_out := stats.get("held_out"):
        parts += _held_out_parts(held_out)
    configs = stats.get("configs") or {}
    for grouping, title in (("by_level", "Rows by level"), ("by_strategy", "Questions by sampling strategy")):
        having = {name: config[grouping] for name, config in configs.items() if config.get(grouping)}
        if having:
            columns = list(dict.fromkeys(key for counts in having.values() for key in counts))
            parts.append(f"#### {title}")
            parts.append(
                markdown_table(
                    ["config", *columns],
                    [[name, *(counts.get(c, 0) for c in columns)] for name, counts in having.items()],
                )
            )
    lengths = [
        [name, column, *(summary.get(key) for key in _LENGTH_KEYS)]
        for name, config in configs.items()
        for column, summary in (config.get("words") or {}).items()
    ]
    if lengths:
        parts.append("#### Lengths in words")
        parts.append(markdown_table(["config", "column", *_LENGTH_KEYS], lengths))
    return "\n\n".join(parts) if len(parts) > 1 else ""


_LENGTH_KEYS = ("count", "min", "p50", "p90", "max", "mean")


def _decontamination_parts(decontamination: dict) -> list[str]:
    """Each benchmark checked, as configured and as indexed, with its hits per side; the shipped ones not checked."""
    parts = [
        "#### Decontamination",
        f"A pair is dropped (`contaminated`) when its question (checked before answering) or its answer shares a run "
        f"of {decontamination['ngram']} words with a benchmark item, or holds a whole item of "
        f"{decontamination['min_words']} to {decontamination['ngram'] - 1} words; items under "
        f"{decontamination['min_words']} words (too short) are not matched. A pair counts once per benchmark and "
        "side it hits.",
    ]
    benchmarks = decontamination["benchmarks"]
    if benchmarks:
        parts.append(
            markdown_table(
                [
                    "benchmark",
                    "source",
                    "configs",
                    "splits",
                    "columns",
                    "items",
                    "too short",
                    "question hits",
                    "answer hits",
                ],
                [
                    [
                        entry["name"],
                        _code(entry["source"]),
                        ", ".join(entry["configs"]),
                        ", ".join(entry["splits"]),
                        ", ".join(entry["text_columns"]),
                        entry["items"],
                        entry["too_short"],
                        entry["hits"]["question"],
                        entry["hits"]["answer"],
                    ]
                    for entry in benchmarks
                ],
            )
        )
    else:
        parts.append("No benchmark was checked.")
    if unchecked := decontamination["unchecked"]:
        parts.append(
            "Unchecked: glan's default list names "
            + ", ".join(_code(name) for name in unchecked)
            + ", which this build did not check."
        )
    return parts


def _held_out_parts(held_out: dict) -> list[str]:
    """Per discipline, its test questions with a near-duplicate in another discipline's train split."""
    twins = held_out["near_twins"]
    rows = [
        [
            discipline,
            tests,
            held_out["with_near_twin_elsewhere"][discipline],
            _Markdown(
                ", ".join(
                    f"{_code(question_id)} ({', '.join(_cell(twin['discipline_id']) for twin in found)})"
                    for question_id, found in twins.get(discipline, {}).items()
                )
            ),
        ]
        for discipline, tests in held_out["test_questions"].items()
    ]
    return [
        "#### GLAN-Test across disciplines",
        "Dedup runs within a discipline, so a test question may have a near-duplicate (dedup's MinHash setting) in "
        "another discipline's train split. No row is dropped for it (a discipline's rows never change when another "
        f"is added); {held_out['total_with_near_twin_elsewhere']} test questions have one, listed here and with "
        "their twins in stats.json (`held_out.near_twins`): leave them out of an evaluation.",
        markdown_table(
            ["discipline", "test questions", "with a near-twin elsewhere", "question_id (twin's discipline)"], rows
        ),
    ]


def _charts_section(manifest: Manifest) -> str:
    """The folder's charts (charts/*.png, listed in its checksums), linked by relative paths (empty without)."""
    charts = [(path, title) for path, title in CHART_TITLES.items() if path in manifest.checksums]
    if not charts:
        return ""
    return "\n\n".join(["### Charts", *(f"![{title}]({path})" for path, title in charts)])


def _repetition_section(manifest: Manifest) -> str:
    """How often the texts repeat themselves, overall and per discipline, with the flagged disciplines (empty
    without the figures)."""
    repetition = (manifest.stats or {}).get("repetition")
    if not repetition or not repetition["overall"]:
        return ""
    share = repetition["flag_opening_share"]
    names = {entry.discipline_id: entry.discipline for entry in manifest.disciplines}
    flagged = repetition["flagged"]
    columns = list(repetition["overall"])
    parts = [
        "### Repetition and diversity",
        "How the texts open (their first three words, case and punctuation aside) and how varied their words are: "
        "distinct-n is the share of distinct n-grams among all n-grams of a discipline's first "
        f"{NGRAM_ROWS} texts (the overall figure pools the disciplines' counts, so it does not count repetition across "
        "disciplines). Overall openings are summed from each discipline's ten most common. A discipline is flagged "
        f"when one opening starts more than {share:.0%} of its questions or answers "
        "(`quality.repetition.flag_opening_share`).",
        markdown_table(
            ["column", "rows", "most common openings (share)", "distinct-1", "distinct-2"],
            [
                [
                    column,
                    figures["rows"],
                    "; ".join(f"{item['opening']} ({item['share']:.1%})" for item in figures["top_openings"][:5]),
                    figures["distinct"].get("distinct_1"),
                    figures["distinct"].get("distinct_2"),
                ]
                for column, figures in repetition["overall"].items()
            ],
        ),
        (
            f"**Flagged: {len(flagged)} of {len(repetition['by_discipline'])} disciplines** open more than {share:.0%} "
            "of their texts the same way: "
            + ", ".join(f"{_cell(names.get(key, key))} ({_cell(', '.join(cols))})" for key, cols in flagged.items())
            + "."
            if flagged
            else f"No discipline opens more than {share:.0%} of its questions or answers the same way."
        ),
        markdown_table(
            [
                "discipline",
                *(f"{column}: top opening (share)" for column in columns),
                *(f"{column}: distinct-2" for column in columns),
                *(f"{column}: words p50" for column in columns),
                "flag",
            ],
            [
                [
                    names.get(key, key),
                    *(_top_opening(entry.get(column)) for column in columns),
                    *((entry.get(column) or {}).get("distinct", {}).get("distinct_2") for column in columns),
                    *((entry.get(column) or {}).get("words_p50") for column in columns),
                    "flagged" if key in flagged else "",
                ]
                for key, entry in repetition["by_discipline"].items()
            ],
        ),
    ]
    return "\n\n".join(parts)


def _top_opening(figures: dict | None) -> str:
    if not figures or not figures["top_openings"]:
        return ""
    top = figures["top_openings"][0]
    return f"{top['opening']} ({top['share']:.1%})"


def _judge_section(manifest: Manifest) -> str:
    """Who judged the pairs and how, what it cost, what min_score dropped, and the scores (empty without a judge)."""
    judge = manifest.judge
    if judge is None:
        return ""
    scores = scores_kept(manifest.stats)
    dropped = ((manifest.stats or {}).get("quality") or {}).get("dropped") or {}
    if judge.min_score is None:
        kept = "No `min_score` was set: every pair is kept, with its score."
    else:
        kept = (
            f"`min_score` {judge.min_score}: {dropped.get('low_score', {}).get('total', 0):,} pairs scored below it "
            f"and {dropped.get('unscored', {}).get('total', 0):,} the judge could not score were dropped."
        )
    parts = [
        "### Judge",
        f"Every pair was rated by `{judge.model}` against the rubric in `{INPUTS_DIR}/prompts/judge.yaml` (correct, "
        "complete, clear, answers what was asked) with a score from 1 to 10 and a one-sentence reason: the "
        "`score`, `score_reason` and `judge_model` columns of `instructions` (null where the judge gave no valid "
        f"verdict). A model's score is no proof of correctness. {kept}",
        markdown_table(
            ["requests", "failed", "tokens in", "tokens out", "cost USD"],
            [[judge.requests, judge.failed, judge.prompt_tokens, judge.completion_tokens, f"{judge.cost:.4f}"]],
        ),
    ]
    if scores:
        total = sum(scores.values())
        parts.append("#### Scores of the pairs kept")
        parts.append(
            markdown_table(
                ["score", "pairs", "share"],
                [[score, count, f"{count / total:.1%}"] for score, count in scores.items()],
            )
        )
    return "\n\n".join(parts)
