"""`glan build`: run the pipeline and write the dataset folder."""

from __future__ import annotations

import sys

from ..stages import CONFIGS
from .run import run_flags, run_settings, with_endpoint


def add_parser(commands) -> None:
    parser = commands.add_parser("build", parents=[run_flags()], help="run the pipeline and write the dataset folder")
    parser.set_defaults(run=run)


def run(args) -> int:
    import datasets

    from ..build import build

    unknown = sorted(set(args.configs) - set(CONFIGS))
    if unknown:
        print(f"glan: --configs: unknown config {', '.join(unknown)}; choose from {', '.join(CONFIGS)}.",
              file=sys.stderr)
        return 2
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return with_endpoint(args, run_settings(args), lambda run: build(run, args.out, args.configs, args.max_failure_rate))
