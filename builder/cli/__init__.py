"""The `glan` command line, one module per command.

Exit codes: 0 ok, 1 finished with failures over the threshold or stopped by a budget, 2 bad input,
130 interrupted. Heavy imports (datasets, openai) happen inside the commands, so `glan --help` is quick.
"""

from __future__ import annotations

import argparse
import sys

from . import batches, build, estimate, push, serve_local, show, taxonomy

COMMANDS = (build, estimate, batches, taxonomy, serve_local, show, push)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glan", description="GLAN synthetic instruction data from a taxonomy.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..llm.batch import BatchError
    from ..llm.engine import EndpointError
    from ..llm.local import LocalServerError
    from ..prompts import PromptError
    from ..taxonomy import TaxonomyError
    from ..workdir import WorkDirBusy

    try:
        return args.run(args)
    except LocalServerError as error:
        print(f"glan: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("glan: interrupted. Every response received so far is cached: run the same command to resume.",
              file=sys.stderr)
        return 130
    except (TaxonomyError, PromptError, WorkDirBusy, BatchError, EndpointError) as error:
        print(f"glan: {error}", file=sys.stderr)
        return 2
