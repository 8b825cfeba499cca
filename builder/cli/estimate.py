"""`glan estimate`: requests, tokens and cost per stage of the same build, without calling an LLM."""

from __future__ import annotations

from .run import run_settings, selection_flags
from .sizing import sizing, sizing_flags


def add_parser(commands, preset_help: str) -> None:
    parser = commands.add_parser(
        "estimate",
        parents=[selection_flags(preset_help), sizing_flags()],
        help="requests, tokens and cost per stage of the same build, without calling an LLM",
        description="Requests, tokens and cost per stage of `glan build` with the same "
        "flags, and the train and test pairs it would yield, without calling an LLM or writing a file: "
        "the cache gives exact counts for what it holds, the settings extrapolate the rest.",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..api import estimate_run
    from ..estimate import format_estimate

    print(format_estimate(estimate_run(run_settings(args, progress=False, **sizing(args)), args.configs)))
    return 0
