"""The `glan` command line. Exit codes: 0 ok, 1 finished with failures over the threshold, 2 bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import schemas


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glan", description="GLAN synthetic instruction data from a taxonomy.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="run the pipeline and write the dataset folder")
    build.add_argument("--taxonomy", default="taxonomy.yaml")
    build.add_argument("--out", default="dist", type=Path)
    build.add_argument("--work-dir", default=".glan")
    build.add_argument("--preset")
    build.add_argument("--disciplines", type=_csv, default=[], help="names or ids, comma-separated")
    build.add_argument("--configs", type=_csv, default=list(schemas.CONFIGS), help=",".join(schemas.CONFIGS))
    build.add_argument("--model", help="model for every stage (overrides the taxonomy's per-stage models)")
    build.add_argument("--base-url", help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL, then OpenAI)")
    build.add_argument("--concurrency", type=int, help="max requests in flight per endpoint")
    build.add_argument("--seed", type=int)
    build.add_argument("--max-failure-rate", type=float, default=0.01)
    build.add_argument("--max-cost", type=float, help="stop cleanly after spending this many USD")
    build.add_argument("--max-requests", type=int, help="stop cleanly after sending this many requests")

    taxonomy = commands.add_parser("taxonomy", help="check or compare taxonomy files")
    taxonomy_commands = taxonomy.add_subparsers(dest="taxonomy_command", required=True)
    validate = taxonomy_commands.add_parser("validate", help="check a taxonomy file; exit 2 on the first problem")
    validate.add_argument("path", nargs="?", default="taxonomy.yaml")
    diff = taxonomy_commands.add_parser("diff", help="what changed between two taxonomy files")
    diff.add_argument("old")
    diff.add_argument("new")

    push = commands.add_parser("push", help="publish the dataset folder to the Hub as one commit and a tag")
    push.add_argument("repo_id")
    push.add_argument("--from", dest="folder", default="dist", type=Path)
    push.add_argument("--revision", default="main")
    push.add_argument("--private", action="store_true")
    push.add_argument("--create-pr", action="store_true")
    push.add_argument("--message")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .prompts import PromptError
    from .taxonomy import TaxonomyError
    from .workdir import WorkDirBusy

    try:
        return _dispatch(args)
    except (TaxonomyError, PromptError, WorkDirBusy) as error:
        print(f"glan: {error}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    if args.command == "build":
        return _build(args)
    if args.command == "taxonomy":
        from .taxonomy import diff_taxonomies, format_diff, load_taxonomy, validate_command

        if args.taxonomy_command == "validate":
            return validate_command(args.path)
        print(format_diff(diff_taxonomies(load_taxonomy(args.old), load_taxonomy(args.new))))
        return 0
    if args.command == "push":
        from .hub import push_command

        return push_command(args)
    raise AssertionError(args.command)


def _build(args) -> int:
    import datasets

    from .build import build
    from .pipeline import RunSettings

    unknown = sorted(set(args.configs) - set(schemas.CONFIGS))
    if unknown:
        print(f"glan: --configs: unknown config {', '.join(unknown)}; choose from {', '.join(schemas.CONFIGS)}.",
              file=sys.stderr)
        return 2
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    run = RunSettings(
        taxonomy=args.taxonomy, work_dir=args.work_dir, preset=args.preset, disciplines=tuple(args.disciplines),
        model=args.model, base_url=args.base_url, concurrency=args.concurrency, seed=args.seed,
        max_cost=args.max_cost, max_requests=args.max_requests, progress=sys.stderr.isatty())
    return build(run, args.out, args.configs, args.max_failure_rate)


if __name__ == "__main__":
    sys.exit(main())
