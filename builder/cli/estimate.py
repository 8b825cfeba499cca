"""`glan estimate`: requests, tokens and cost per stage of the same build, without calling an LLM."""

from __future__ import annotations

from .output import print_json
from .run import resolved, selection_flags


def add_parser(commands, preset_help: str) -> None:
    parser = commands.add_parser(
        "estimate",
        parents=[selection_flags(preset_help)],
        help="requests, tokens and cost per stage of the same build, without calling an LLM",
        description="Requests, tokens and cost per stage of `glan build` with the same "
        "flags, without calling an LLM: the cache gives exact counts for what "
        "it holds, the settings extrapolate the rest.",
    )
    parser.add_argument("--json", action="store_true", help="print the estimate as one JSON document on stdout")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..estimate import estimate, estimate_command

    # Priced as `glan build` would run it, on the embedded model if no endpoint is configured (no server is started).
    run = resolved(args, progress=False)
    if args.json:
        print_json(estimate(run, args.configs))
        return 0
    return estimate_command(run, args.configs)
