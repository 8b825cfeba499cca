"""`glan init [DIR]`: a project to start from, the taxonomy.yaml and prompts/ shipped with glan."""

from __future__ import annotations

from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "init",
        help="write the shipped taxonomy.yaml and prompts/ into a folder, to edit",
        description="Write the taxonomy.yaml and prompts/ shipped with glan into DIR, to "
        "edit and build from. Existing files are never overwritten.",
    )
    parser.add_argument("directory", nargs="?", default=".", type=Path, metavar="DIR", help="where to write them")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..project import init_project

    written = init_project(args.directory)
    print(f"wrote {len(written)} files into {args.directory}: taxonomy.yaml and prompts/ ({len(written) - 1} files).")
    print(
        "Next: edit taxonomy.yaml (`glan taxonomy validate` checks it), `glan estimate --preset demo`, "
        "then `glan build --preset demo`."
    )
    return 0
