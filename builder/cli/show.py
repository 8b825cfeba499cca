"""`glan show`: a few rows of a built folder, read back the way a trainer reads them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from ..llm.local_models import demo_notice
from ..publish.manifest import read_manifest
from ..stages import CONFIGS, DEFAULT_CONFIG
from .args import whole_number


def add_parser(commands) -> None:
    parser = commands.add_parser("show", help="print a few rows of a built folder, read back with load_dataset")
    parser.add_argument("folder", nargs="?", default="dist", type=Path, help="a folder `glan build` wrote")
    parser.add_argument("--config", default=DEFAULT_CONFIG, choices=CONFIGS, help="the config to read")
    parser.add_argument("--rows", type=whole_number(1), default=3, help="how many rows to print")
    parser.add_argument(
        "--sort",
        choices=["score"],
        help="score: the lowest-scored pairs first (the worst to read first), then the highest (a judged build)",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    return show(args.folder, args.config, args.rows, args.sort)


def show(folder: Path, config: str, count: int, sort: str | None = None) -> int:
    import datasets

    if not (folder / "README.md").exists():
        print(f"glan: {folder}: no built dataset here. Run `glan build --out {folder}` first.", file=sys.stderr)
        return 2
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    rows = datasets.load_dataset(str(folder), config, split="train")
    manifest = read_manifest(folder)
    writer = manifest.embedded_model if manifest else None
    if writer:
        print(f"{demo_notice(writer)}\n")
    if sort == "score":
        return _by_score(folder, config, rows, count)
    print(f'load_dataset("{folder}", "{config}"): {rows.num_rows} rows; the first {min(count, rows.num_rows)}:\n')
    _print(rows.select(range(min(count, rows.num_rows))))
    return 0


def _by_score(folder: Path, config: str, rows, count: int) -> int:
    """The `count` lowest-scored rows, then the `count` highest, each with its score and the judge's reason."""
    scores = rows["score"] if "score" in rows.column_names else []
    # Lowest first, ties by question id; selected in memory: nothing is written beside the folder or into a cache.
    order = sorted(
        (score, question_id, index)
        for index, (score, question_id) in enumerate(zip(scores, rows["question_id"] if scores else [], strict=True))
        if score is not None
    )
    if not order:
        print(
            f"glan: {folder}: the {config} rows have no score (the judge did not run). Build with `--preset judged`, "
            "or set generation.judge.enabled in taxonomy.yaml.",
            file=sys.stderr,
        )
        return 2
    indices = [index for _, _, index in order]
    lowest = indices[:count]
    highest = indices[len(lowest) :][-count:][::-1]
    print(f'load_dataset("{folder}", "{config}"): {len(indices)} scored rows; the {len(lowest)} lowest-scored:\n')
    _print(rows.select(lowest, keep_in_memory=True))
    if highest:
        print(f"the {len(highest)} highest-scored:\n")
        _print(rows.select(highest, keep_in_memory=True))
    return 0


def _print(rows) -> None:
    for row in rows:
        print(f"[{row['discipline']}{' / ' + row['subject'] if 'subject' in row else ''}]")
        if row.get("score") is not None:
            print(f"  score {row['score']}/10 ({row['judge_model']}): {_short(row['score_reason'])}")
        if "messages" in rows.column_names:
            for message in row["messages"]:
                print(f"  {message['role']}: {_short(message['content'])}")
        else:
            for name, value in row.items():
                if name not in ("field", "subfield", "discipline", "subject"):
                    print(f"  {name}: {_short(str(value))}")
        print()


def _short(text: str, width: int = 400) -> str:
    return textwrap.shorten(" ".join(text.split()), width, placeholder=" ...")
