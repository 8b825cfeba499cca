"""`glan estimate`: requests, tokens and cost per stage of the same build, without calling an LLM."""

from __future__ import annotations

from .output import print_json
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
    parser.add_argument("--json", action="store_true", help="print the estimate as one JSON document on stdout")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..api import estimate_run
    from ..estimate import format_estimate

    estimate = estimate_run(run_settings(args, progress=False, **sizing(args)), args.configs)
    if args.json:
        print_json(estimate)
    else:
        print(format_estimate(estimate))
    return 0
