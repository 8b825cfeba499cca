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
    parser.set_defaults(run=run)


def run(args) -> int:
    return show(args.folder, args.config, args.rows)


def show(folder: Path, config: str, count: int) -> int:
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
    print(f'load_dataset("{folder}", "{config}"): {rows.num_rows} rows; the first {min(count, rows.num_rows)}:\n')
    for row in rows.select(range(min(count, rows.num_rows))):
        print(f"[{row['discipline']}{' / ' + row['subject'] if 'subject' in row else ''}]")
        if "messages" in rows.column_names:
            for message in row["messages"]:
                print(f"  {message['role']}: {_short(message['content'])}")
        else:
            for name, value in row.items():
                if name not in ("field", "subfield", "discipline", "subject"):
                    print(f"  {name}: {_short(str(value))}")
        print()
    return 0


def _short(text: str, width: int = 400) -> str:
    return textwrap.shorten(" ".join(text.split()), width, placeholder=" ...")
