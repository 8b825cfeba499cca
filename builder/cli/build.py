"""`glan build`: run the pipeline and write the dataset folder."""

from __future__ import annotations

from .output import print_json
from .run import build_flags, run_settings, selection_flags
from .sizing import sizing, sizing_flags, terminal_confirm, yes_flag


def add_parser(commands, preset_help: str) -> None:
    parser = commands.add_parser(
        "build",
        parents=[selection_flags(preset_help), sizing_flags(), build_flags(), yes_flag()],
        help="run the pipeline and write the dataset folder",
        description="Run the pipeline and write the dataset folder: parquet shards per "
        "config, the card (README.md), glan_manifest.json, stats.json and the "
        "inputs that made it (glan/). Exit 0 done, 1 stopped by a budget or "
        "too many failures, 2 bad input, 130 interrupted.",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the discipline units on a Ray cluster: `auto` for one started with `ray start`, "
        "HOST:PORT, or nothing for the one ray.init() finds or starts (needs glan[ray]; "
        "default: the taxonomy's generation.executor)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary (rows, requests, tokens, cost per stage; the folder; why it stopped) as one JSON "
        "document on stdout",
    )
    parser.set_defaults(run=run, log_file=True)


def run(args) -> int:
    import datasets

    from ..api import build_run

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    ray = {"executor": "ray", "ray_address": args.ray or None} if args.ray is not None else {}
    settings = run_settings(args, **ray, **sizing(args))
    result = build_run(settings, args.out, args.configs, yes=args.yes, confirm=terminal_confirm())
    if args.json:
        print_json(result)
    return 0 if result.complete else 1
