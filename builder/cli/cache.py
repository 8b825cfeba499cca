"""`glan cache check`: SQLite's integrity check of the work dir's response caches; a damaged one is
replaced by what can still be read, and the damaged file is kept aside. Responses glan cannot read are
moved aside into a file beside their cache."""

from __future__ import annotations

from pathlib import Path

from ..config.run import DEFAULT_WORK_DIR
from ..errors import UserError


def add_parser(commands) -> None:
    cache = commands.add_parser("cache", help="check the response caches of a work dir")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, help="what to do")
    check = cache_commands.add_parser(
        "check",
        help="run SQLite's integrity check; when it fails, keep what can still be read (exit 1)",
        description="Run SQLite's integrity check on every cache file of the work dir. A damaged one is replaced "
        "by the rows SQLite can still read, and kept aside as <name>.damaged-<time>. Responses glan "
        "cannot read (written by an older glan or another program) move to <name>.unreadable-<time>. "
        "Exit 0 intact, 1 damaged (and salvaged) or responses moved, 2 no cache there.",
    )
    check.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help="the work dir of the build")
    check.set_defaults(run=run_check)


def run_check(args) -> int:
    """0 intact; 1 damaged and salvaged, or unreadable responses moved aside."""
    from ..llm.cache_check import cache_files, check
    from ..workdir import exclusive

    work_dir = Path(args.work_dir)
    paths = cache_files(work_dir)
    if not paths:
        raise UserError(
            f"{work_dir}: no cache here (cache.sqlite, cache/*.sqlite). Pass the --work-dir of a "
            "build (the default is .glan)."
        )
    with exclusive(work_dir):  # no build may write while the files are checked or replaced
        results = list(map(check, paths))
    damaged = [result for result in results if result.problems]
    unreadable = [result for result in results if result.unreadable]
    for result in damaged:
        print(result.summary())
    for result in unreadable:
        print(result.unreadable_summary())
    if not damaged and not unreadable:
        print(
            f"{work_dir}: {len(paths)} cache files, no damage found by SQLite's integrity check, every response "
            "readable."
        )
        return 0
    found = ([f"{len(damaged)} damaged"] if damaged else []) + (
        [f"{len(unreadable)} with responses moved aside"] if unreadable else []
    )
    what = " or ".join((["lost"] if damaged else []) + (["moved aside"] if unreadable else []))
    print(
        f"{work_dir}: {len(paths)} cache files, {', '.join(found)}. Run the build again: it sends the "
        f"requests whose responses were {what}."
    )
    return 1
