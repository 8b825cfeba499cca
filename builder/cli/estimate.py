"""`glan estimate`: requests, tokens and cost per stage of the same build, without calling an LLM."""

from __future__ import annotations

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
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..estimate import estimate_command

    # Priced as `glan build` would run it, on the embedded model if no endpoint is configured (no server is started).
    return estimate_command(resolved(args, progress=False), args.configs)
