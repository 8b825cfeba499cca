"""`glan build`: run the pipeline and write the dataset folder."""

from __future__ import annotations

from dataclasses import replace

from .run import build_flags, run_settings, selection_flags, with_endpoint


def add_parser(commands, preset_help: str) -> None:
    parser = commands.add_parser("build", parents=[selection_flags(preset_help), build_flags()],
                                 help="run the pipeline and write the dataset folder",
                                 description="Run the pipeline and write the dataset folder: parquet shards per "
                                             "config, the card (README.md), glan_manifest.json, stats.json and the "
                                             "inputs that made it (glan/). Exit 0 done, 1 stopped by a budget or "
                                             "too many failures, 2 bad input, 130 interrupted.")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run the discipline units on a Ray cluster: `auto` for one started with `ray start`, "
                             "HOST:PORT, or nothing for the one ray.init() finds or starts (needs glan[ray]; "
                             "default: the taxonomy's generation.executor)")
    parser.set_defaults(run=run)


def run(args) -> int:
    import datasets

    from ..build import build

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    settings = run_settings(args)
    if args.ray is not None:
        settings = replace(settings, executor="ray", ray_address=args.ray or None)
    return with_endpoint(args, settings, lambda run: build(run, args.out, args.configs, args.max_failure_rate))
