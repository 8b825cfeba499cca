"""`glan show`: a few rows of a built folder, read back the way a trainer reads them."""

from __future__ import annotations

import itertools
import textwrap
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from ..configs import CONFIGS, DEFAULT_CONFIG
from ..errors import UserError
from ..llm.local_models import demo_notice
from ..wording import counted
from .args import whole_number


def add_parser(commands) -> None:
    parser = commands.add_parser("show", help="print a few rows of a built folder, read back with load_dataset")
    parser.add_argument("folder", nargs="?", default="dist", type=Path, help="a folder `glan build` wrote")
    parser.add_argument("--config", default=DEFAULT_CONFIG, choices=CONFIGS, help="the config to read")
    parser.add_argument("--rows", type=whole_number(1), default=3, help="how many rows to print per split")
    parser.add_argument("--split", help="the split to read (default: every split of the config)")
    parser.add_argument(
        "--discipline",
        action="append",
        metavar="NAME",
        help="only this discipline's rows, by name or id (repeatable; default: every discipline, in turn)",
    )
    parser.add_argument(
        "--sort",
        choices=["score"],
        help="score: the lowest-scored pairs first (the worst to read first), then the highest (a judged build; "
        "of --split, default train)",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    return show(args.folder, args.config, args.rows, args.split, args.discipline or [], args.sort)


def show(
    folder: Path,
    config: str,
    count: int,
    split: str | None = None,
    disciplines: Sequence[str] = (),
    sort: str | None = None,
) -> int:
    import datasets  # here, as the manifest's reader (it imports datasets): not on every command's start

    from ..publish.manifest import read_manifest

    if not (folder / "README.md").exists():
        raise UserError(f"{folder}: no built dataset here. Run `glan build --out {folder}` first.")
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        splits = datasets.load_dataset(str(folder), config)
    except datasets.exceptions.DatasetGenerationError as error:  # shards that do not match the card's features
        raise UserError(f"{folder}: cannot read {config} ({error.__cause__ or error}).") from None
    if split is not None and split not in splits:
        raise UserError(f"{folder}: {config} has no split {split!r}; it has {', '.join(splits)}.")
    if unknown := _unknown(splits, disciplines):
        raise UserError(
            f"{folder}: {config} has no rows of {', '.join(unknown)}; pass --discipline with the name or id of a "
            "discipline the folder was built with."
        )
    manifest = read_manifest(folder)
    writer = manifest.embedded_model if manifest else None
    if writer:
        print(f"{demo_notice(writer)}\n")
    if sort == "score":
        return _by_score(folder, config, splits[split or "train"], disciplines, count)
    sizes = ", ".join(f"{name} {counted(rows.num_rows, 'row')}" for name, rows in splits.items())
    every = {discipline_id for rows in splits.values() for discipline_id in rows["discipline_id"]}
    print(f'load_dataset("{folder}", "{config}"): {sizes}, of {counted(len(every), "discipline")}\n')
    for name in [split] if split else list(splits):
        rows = splits[name]
        chosen = _in_turn(rows["discipline"], rows["discipline_id"], disciplines, count)
        print(f"{name}: {_which(chosen, disciplines)}\n")
        for row in rows.select(chosen):
            _print_row(row, rows.column_names)
    return 0


def _in_turn(names: list[str], ids: list[str], asked: Sequence[str], count: int) -> list[int]:
    """Up to `count` row indices of the `asked` disciplines (by name or id; every one when none is asked), one of
    each discipline in turn, so that a few rows show more than the first discipline."""
    by_discipline: dict[str, list[int]] = {}
    for index, (name, discipline_id) in enumerate(zip(names, ids, strict=True)):
        if not asked or name in asked or discipline_id in asked:
            by_discipline.setdefault(discipline_id, []).append(index)
    rounds = itertools.zip_longest(*by_discipline.values())
    return [index for turn in rounds for index in turn if index is not None][:count]


def _unknown(splits, asked: Sequence[str]) -> list[str]:
    """The asked disciplines that no split of the config has a row of."""
    known = {value for rows in splits.values() for column in ("discipline", "discipline_id") for value in rows[column]}
    return [name for name in asked if name not in known]


def _which(chosen: list[int], asked: Sequence[str]) -> str:
    """What the rows shown of a split are."""
    if not chosen:
        return f"no row{' of ' + ', '.join(asked) if asked else ''}"
    return (
        f"the first {counted(len(chosen), 'row')}{' of ' + ', '.join(asked) if asked else ', a discipline at a time'}:"
    )


def _by_score(folder: Path, config: str, rows, disciplines: Sequence[str], count: int) -> int:
    """The `count` lowest-scored rows (of the asked disciplines), then the `count` highest, each with its score and
    the judge's reason."""
    scores = rows["score"] if "score" in rows.column_names else []
    asked = set(disciplines)
    # Lowest first, ties by question id; selected in memory: nothing is written beside the folder or into a cache.
    order = sorted(
        (score, question_id or "", index)
        for index, (score, question_id, name, discipline_id) in enumerate(
            zip(scores, rows["question_id"], rows["discipline"], rows["discipline_id"], strict=False)
        )
        if score is not None and (not asked or name in asked or discipline_id in asked)
    )
    if not order:
        raise UserError(
            f"{folder}: the {config} rows have no score (the judge did not run). Build with `--preset judged`, "
            "or set generation.judge.enabled in taxonomy.yaml."
        )
    indices = [index for _, _, index in order]
    lowest = indices[:count]
    highest = indices[len(lowest) :][-count:][::-1]
    print(f'load_dataset("{folder}", "{config}"): {len(indices)} scored rows; the {len(lowest)} lowest-scored:\n')
    for row in rows.select(lowest, keep_in_memory=True):
        _print_row(row, rows.column_names)
    if highest:
        print(f"the {len(highest)} highest-scored:\n")
        for row in rows.select(highest, keep_in_memory=True):
            _print_row(row, rows.column_names)
    return 0


def _print_row(row: dict, columns: list[str]) -> None:
    print(f"[{_short(row['discipline'])}{' / ' + _short(row['subject']) if 'subject' in row else ''}]")
    if row.get("score") is not None:
        print(f"  score {row['score']}/10 ({_short(row['judge_model'])}): {_short(row['score_reason'])}")
    if "messages" in columns:
        for message in row["messages"]:
            print(f"  {message['role']}: {_short(message['content'])}")
    else:
        for name, value in row.items():
            if name not in ("field", "subfield", "discipline", "subject"):
                print(f"  {name}: {_short(str(value))}")
    print()


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _short(text: str | None, width: int = 400) -> str:
    """`text` on one line, cut at `width`, every control character and bidi override shown as its code point: the
    rows are whatever wrote the folder, and an escape sequence printed raw drives the terminal (titles, links,
    clears), a bidi override reorders what is shown."""
    words = " ".join(str(text if text is not None else "").split())
    visible = "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c) == "Cc" or c in _BIDI else c for c in words)
    return textwrap.shorten(visible, width, placeholder=" ...")
