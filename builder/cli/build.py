"""`glan build`: run the pipeline and write the dataset folder."""

from __future__ import annotations

from .run import build_flags, run_settings, selection_flags, with_endpoint


def add_parser(commands, preset_help: str) -> None:
    parser = commands.add_parser("build", parents=[selection_flags(preset_help), build_flags()],
                                 help="run the pipeline and write the dataset folder",
                                 description="Run the pipeline and write the dataset folder: parquet shards per "
                                             "config, the card (README.md), glan_manifest.json, stats.json and the "
                                             "inputs that made it (glan/). Exit 0 done, 1 stopped by a budget or "
                                             "too many failures, 2 bad input, 130 interrupted.")
    parser.set_defaults(run=run)


def run(args) -> int:
    import datasets

    from ..build import build

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return with_endpoint(args, run_settings(args), lambda run: build(run, args.out, args.configs, args.max_failure_rate))
