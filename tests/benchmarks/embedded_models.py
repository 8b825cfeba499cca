"""The embedded models side by side on the demo preset: validity and readability per stage, wall time, rows.

    .venv/bin/python -m tests.benchmarks.embedded_models [--models smollm2-135m,gemma3-270m] [--without-examples]

For each model, a real `glan build` (the embedded default, `--local-model NAME`) in a fresh folder with
the repository's taxonomy.yaml and prompts/, then per stage:
- invalid: responses that fail validation (JSON, schema, cut off at max_tokens) / responses; every
  attempt counts, so a retried item adds its invalid attempts;
- failed: items that got no valid output within the attempts allowed / items;
- unreadable: texts of the built rows that are not prose (`unreadable` below: URLs, ids, file names,
  JSON fragments) or that echo the topics of the prompt files' local_examples / texts;
- the wall time of the whole build (server start and model load included);
and the rows of each build side by side (subjects, syllabus sessions, then questions with their answers),
up to ten of each.
`--without-examples` strips `local_examples` from the copied prompt files, to measure what they bring.
Prints markdown (the tables of docs/embedded_models.md). tests/test_local_e2e.py holds the default model
to the same measures.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from glan.llm.local_models import LOCAL_MODELS
from glan.llm.structured import parse_output
from glan.prompts import load_prompt
from glan.stages import OUTPUTS, STAGE_NAMES
from glan.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[2]
ROWS_SHOWN = 10
# A token a person reads: a word, a number or an operator, with the punctuation prose puts around it.
_PROSE_TOKEN = re.compile(r"""^[("'\[`]*([A-Za-z][A-Za-z'’-]*|\d+([.,:]\d+)*[a-z]{0,2}|[-+*/=×÷<>%^&])[)"'\]`,.;:!?]*$""")
# Words of the topics of the prompt files' local_examples (World History, Human Biology): none belongs in
# the demo's disciplines (Elementary Arithmetic, Python Programming), so a row holding one copied an example.
EXAMPLE_TOPICS = re.compile(r"\b(rivers?|cities|irrigation|cuneiform|mesopotamia|egypt|heart|valves?|blood|"
                            r"circulatory|mitochondria)\b", re.IGNORECASE)


def unreadable(text: str, min_words: int) -> bool:
    """Not prose (fewer than `min_words` words, or under 80% of its tokens words), or copied from an example."""
    tokens = text.split()
    words = sum(bool(_PROSE_TOKEN.match(token)) for token in tokens)
    return words < min_words or words < 0.8 * len(tokens) or bool(EXAMPLE_TOPICS.search(text))


def stage_texts(dist: Path) -> dict[str, list[tuple[str, int]]]:
    """stage -> (text, fewest words it needs) for every text the stage wrote into the built folder."""
    def rows(config: str) -> list[dict]:
        return [row for path in sorted(glob.glob(str(dist / config / "*.parquet")))
                for row in pq.read_table(path).to_pylist()]

    sessions = [session for row in rows("syllabi") for session in row["sessions"]]
    return {
        "subjects": [(row["subject"], 1) for row in rows("subjects")]
                    + [(topic, 1) for row in rows("subjects") for topic in row["subtopics"]],
        "syllabus": [(session["title"], 1) for session in sessions] + [(session["description"], 3) for session in sessions]
                    + [(concept, 1) for session in sessions for concept in session["key_concepts"]],
        "questions": [(row["question"], 3) for row in rows("questions")],
        "answers": [(row["messages"][1]["content"], 3) for row in rows("instructions")],
    }


def readability(dist: Path) -> dict[str, tuple[int, int]]:
    """stage -> (unreadable texts, texts)."""
    return {stage: (sum(unreadable(text, words) for text, words in texts), len(texts))
            for stage, texts in stage_texts(dist).items()}


def invalid_responses(root: Path) -> dict[str, tuple[int, int]]:
    """stage -> (invalid responses, responses), every response of the model (in the work dir's per-discipline
    caches) re-read by glan's own parser."""
    settings = load_taxonomy(root / "taxonomy.yaml").settings("demo")
    responses = {stage: [] for stage in STAGE_NAMES}
    for path in sorted((root / ".glan" / "cache").glob("*.sqlite")):
        with sqlite3.connect(path) as db:
            for stage, text, finish in db.execute("SELECT stage, text, finish_reason FROM responses"):
                responses[stage].append((text, finish))
    counts = {}
    for stage, replies in responses.items():
        output_model = OUTPUTS[load_prompt(root / "prompts", stage, embedded=True).output_model].model(settings)
        invalid = sum(finish == "length" or parse_output(text, output_model)[1] is not None
                      for text, finish in replies)  # cut off at max_tokens: the engine never accepts it
        counts[stage] = (invalid, len(replies))
    return counts


def failed_items(work_dir: Path) -> dict[str, tuple[int, int]]:
    """stage -> (failed items, items), from the build's own accounting."""
    report = json.loads((work_dir / "run_report.json").read_text())
    totals = {stage: [0, 0] for stage in STAGE_NAMES}
    for usage in report["usage"]:
        totals[usage["stage"]][0] += usage["failed"]
        totals[usage["stage"]][1] += usage["failed"] + usage["succeeded"]
    # The judge is off in the demo: it has no items (any other stage without them is a failure to report).
    return {stage: tuple(pair) for stage, pair in totals.items() if stage != "judge" or pair[1]}


def project(root: Path, with_examples: bool) -> None:
    shutil.copy(REPO / "taxonomy.yaml", root / "taxonomy.yaml")
    shutil.copytree(REPO / "prompts", root / "prompts")
    if not with_examples:
        for path in (root / "prompts").glob("*.yaml"):
            spec = yaml.safe_load(path.read_text())
            spec.pop("local_examples", None)
            path.write_text(yaml.safe_dump(spec, sort_keys=False))


def build(root: Path, model_name: str) -> tuple[int, float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "glan.cli", "build", "--local-model", model_name,
                           "--taxonomy", "taxonomy.yaml", "--out", "dist", "--work-dir", ".glan"],
                          cwd=root, env=env, capture_output=True, text=True)
    return done.returncode, time.monotonic() - start, done.stderr


def rows_to_read(dist: Path) -> dict[str, list[str]]:
    """What a person reads of each config, in a stable order, as one line per row (session, for syllabi)."""
    def rows(config: str) -> list[dict]:
        found = [row for path in sorted((dist / config).glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
        return sorted(found, key=lambda row: (row["discipline_id"], row["subject"], row.get("question_id", "")))

    return {
        "subjects": [f"**{row['discipline']}**: {row['subject']} ({row['level']}); subtopics: "
                     f"{'; '.join(row['subtopics'])}" for row in rows("subjects")],
        "syllabus sessions": [f"**{row['subject']}** {session['index'] + 1}. {session['title']}: "
                              f"{session['description']} Key concepts: {'; '.join(session['key_concepts'])}"
                              for row in rows("syllabi") for session in row["sessions"]],
        "questions and answers": [f"**{row['discipline']} / {row['subject']}** Q: {row['messages'][0]['content']} "
                                  f"A: {row['messages'][1]['content']}" for row in rows("instructions")],
    }


def cell(text: str, width: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip().replace("|", "\\|")
    return text if len(text) <= width else text[: width - 3] + "..."


def share(pair: tuple[int, int]) -> str:
    count, total = pair
    return f"{count}/{total}" + (f" ({100 * count / total:.0f}%)" if total else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(LOCAL_MODELS))
    parser.add_argument("--without-examples", action="store_true")
    args = parser.parse_args(argv)
    results = {}
    for name in args.models.split(","):
        root = Path(tempfile.mkdtemp(prefix=f"glan-{name}-"))
        project(root, with_examples=not args.without_examples)
        code, wall, stderr = build(root, name)
        if not (root / ".glan" / "run_report.json").exists():
            print(f"{name}: the build wrote no report (exit {code}):\n{stderr}", file=sys.stderr)
            return 1
        results[name] = {"exit": code, "wall": wall, "invalid": invalid_responses(root),
                         "failed": failed_items(root / ".glan"), "unreadable": readability(root / "dist"),
                         "rows": rows_to_read(root / "dist")}
        print(f"{name}: exit {code}, {wall:.0f} s, work in {root}", file=sys.stderr)

    names = list(results)
    print(f"Demo preset, {'without' if args.without_examples else 'with'} the prompt files' local_examples.\n")
    print("| | " + " | ".join(f"`{name}`" for name in names) + " |")
    print("|---|" + "---|" * len(names))
    print("| wall time of `glan build` | "
          + " | ".join(f"{results[n]['wall'] / 60:.1f} min (exit {results[n]['exit']})" for n in names) + " |")
    for measure in ("invalid", "failed", "unreadable"):
        for stage in STAGE_NAMES:
            print(f"| {stage}: {measure} | " + " | ".join(share(results[n][measure][stage]) for n in names) + " |")
    for kind in results[names[0]]["rows"]:
        print(f"\n| {kind} | " + " | ".join(f"`{name}`" for name in names) + " |")
        print("|---|" + "---|" * len(names))
        for index in range(min(ROWS_SHOWN, max(len(results[n]["rows"][kind]) for n in names))):
            lines = [results[n]["rows"][kind] for n in names]
            print(f"| {index + 1} | " + " | ".join(cell(rows[index]) if index < len(rows) else "" for rows in lines) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
