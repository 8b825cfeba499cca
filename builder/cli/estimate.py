"""`glan estimate`: requests, tokens and cost per stage of the same build, without calling an LLM."""

from __future__ import annotations

from .run import embedded_run, run_flags, run_settings


def add_parser(commands) -> None:
    parser = commands.add_parser("estimate", parents=[run_flags()],
                                 help="requests, tokens and cost per stage of the same build, without calling an LLM")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..estimate import estimate_command

    settings = run_settings(args)  # priced as `glan build` would run it, on the embedded model if no endpoint
    return estimate_command(embedded_run(args, settings) or settings, args.configs)
