"""The `glan` command line. Exit codes: 0 ok, 1 finished with failures over the threshold, 2 bad input."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from . import schemas


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _price(text: str) -> tuple[str, float, float]:
    model, _, prices = text.rpartition("=")
    try:
        input_price, output_price = (float(part) for part in prices.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODEL=IN,OUT in USD per million tokens, "
                                         "e.g. gpt-4o-mini=0.15,0.6") from None
    if not model:
        raise argparse.ArgumentTypeError(f"{text!r}: no model name before '='; e.g. gpt-4o-mini=0.15,0.6")
    return model, input_price, output_price


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glan", description="GLAN synthetic instruction data from a taxonomy.")
    commands = parser.add_subparsers(dest="command", required=True)

    # `glan estimate` takes exactly the flags of `glan build`, so one command line prices the other.
    run_flags = argparse.ArgumentParser(add_help=False)
    run_flags.add_argument("--taxonomy", default="taxonomy.yaml")
    run_flags.add_argument("--out", default="dist", type=Path)
    run_flags.add_argument("--work-dir", default=".glan")
    run_flags.add_argument("--preset")
    run_flags.add_argument("--disciplines", type=_csv, default=[], help="names or ids, comma-separated")
    run_flags.add_argument("--configs", type=_csv, default=list(schemas.CONFIGS), help=",".join(schemas.CONFIGS))
    run_flags.add_argument("--model", help="model for every stage (overrides the taxonomy's per-stage models)")
    run_flags.add_argument("--base-url", help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL, then OpenAI)")
    run_flags.add_argument("--concurrency", type=int, help="max requests in flight per endpoint")
    run_flags.add_argument("--seed", type=int)
    run_flags.add_argument("--max-failure-rate", type=float,
                           help="exit 1 when a larger share of items fails (default: limits.max_failure_rate, 1%%)")
    run_flags.add_argument("--max-cost", type=float, help="stop cleanly after spending this many USD")
    run_flags.add_argument("--price", action="append", type=_price, default=[], metavar="MODEL=IN,OUT",
                           help="USD per million input and output tokens of MODEL (repeatable; overrides the taxonomy)")
    run_flags.add_argument("--max-requests", type=int, help="stop cleanly after sending this many requests")
    run_flags.add_argument("--batch", action="store_true",
                           help="send every stage's uncached requests through the OpenAI Batch API (half price, "
                                "done within 24 h; a rerun resumes the saved batches)")

    commands.add_parser("build", parents=[run_flags], help="run the pipeline and write the dataset folder")
    commands.add_parser("estimate", parents=[run_flags],
                        help="requests, tokens and cost per stage of the same build, without calling an LLM")

    batches = commands.add_parser("batches", help="list the Batch API batches of a work dir, or cancel them")
    batches.add_argument("action", nargs="?", choices=("list", "cancel"), default="list")
    batches.add_argument("batch_ids", nargs="*", help="cancel only these (default: every running batch)")
    batches.add_argument("--work-dir", default=".glan")

    taxonomy = commands.add_parser("taxonomy", help="check or compare taxonomy files")
    taxonomy_commands = taxonomy.add_subparsers(dest="taxonomy_command", required=True)
    validate = taxonomy_commands.add_parser("validate", help="check a taxonomy file; exit 2 on the first problem")
    validate.add_argument("path", nargs="?", default="taxonomy.yaml")
    propose = taxonomy_commands.add_parser(
        "propose", help="ask the LLM for new disciplines, printed as taxonomy YAML to review (never merged)")
    propose.add_argument("--taxonomy", default="taxonomy.yaml")
    propose.add_argument("--under", default="", help='"Field" or "Field/Sub-field" to grow (default: anywhere)')
    propose.add_argument("--count", type=int, default=10)
    propose.add_argument("--model")
    propose.add_argument("--base-url")
    propose.add_argument("--preset")
    propose.add_argument("--work-dir", default=".glan")
    diff = taxonomy_commands.add_parser("diff", help="what changed between two taxonomy files")
    diff.add_argument("old")
    diff.add_argument("new")

    serve = commands.add_parser("serve-local", help="run the embedded llama.cpp server alone, for other tools")
    serve.add_argument("--port", type=int)

    show = commands.add_parser("show", help="print a few rows of a built folder, read back with load_dataset")
    show.add_argument("folder", nargs="?", default="dist", type=Path)
    show.add_argument("--config", default="instructions", choices=schemas.CONFIGS)
    show.add_argument("--rows", type=int, default=3)

    push = commands.add_parser("push", help="publish the dataset folder to the Hub as one commit and a tag")
    push.add_argument("repo_id")
    push.add_argument("--from", dest="from_dir", default="dist", type=Path)
    push.add_argument("--revision", default="main")
    push.add_argument("--private", action="store_true")
    push.add_argument("--create-pr", action="store_true")
    push.add_argument("--message")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .llm.batch import BatchError
    from .llm.engine import EndpointError
    from .llm.local import LocalServerError
    from .prompts import PromptError
    from .taxonomy import TaxonomyError
    from .workdir import WorkDirBusy

    try:
        return _dispatch(args)
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


def _dispatch(args) -> int:
    if args.command == "build":
        return _build(args)
    if args.command == "estimate":
        from .estimate import estimate_command

        run = _run_settings(args)  # priced as `glan build` would run it, on the embedded model if no endpoint
        return estimate_command(_embedded_run(args, run) or run, args.configs)
    if args.command == "taxonomy":
        from .taxonomy import diff_taxonomies, format_diff, load_taxonomy, validate_command

        if args.taxonomy_command == "validate":
            return validate_command(args.path)
        if args.taxonomy_command == "propose":
            return _propose(args)
        print(format_diff(diff_taxonomies(load_taxonomy(args.old), load_taxonomy(args.new))))
        return 0
    if args.command == "serve-local":
        from .llm.local import serve_local_command

        return serve_local_command(args)
    if args.command == "show":
        from .show import show

        return show(args.folder, args.config, args.rows)
    if args.command == "batches":
        from .batches import batches_command

        return batches_command(args.work_dir, args.action, args.batch_ids)
    if args.command == "push":
        from .hub import push_command

        return push_command(args)
    raise AssertionError(args.command)


def _build(args) -> int:
    import datasets

    from .build import build

    unknown = sorted(set(args.configs) - set(schemas.CONFIGS))
    if unknown:
        print(f"glan: --configs: unknown config {', '.join(unknown)}; choose from {', '.join(schemas.CONFIGS)}.",
              file=sys.stderr)
        return 2
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return _with_endpoint(args, _run_settings(args),
                          lambda run: build(run, args.out, args.configs, args.max_failure_rate))


def _propose(args) -> int:
    from .pipeline import RunSettings
    from .propose import propose

    run = RunSettings(taxonomy=args.taxonomy, work_dir=args.work_dir, preset=args.preset, model=args.model,
                      base_url=args.base_url, progress=False)
    return _with_endpoint(args, run, lambda run: propose(run, args.under, args.count))


def _with_endpoint(args, run, action) -> int:
    """Run `action(run)` against the configured endpoint, or else against the embedded default."""
    embedded = _embedded_run(args, run)
    if embedded is None:
        return action(run)
    from .llm.local import LocalServer
    from .pipeline import Pipeline

    Pipeline(replace(embedded, base_url="http://127.0.0.1")).cache.close()  # bad input fails before the server starts
    with LocalServer() as server:
        return action(replace(embedded, base_url=server.base_url))


def _embedded_run(args, run):
    """`run` on the embedded model, with the demo preset (if the taxonomy has one) so a CPU build takes
    minutes; None when an endpoint is named by flag, environment or taxonomy."""
    if args.base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        return None
    from .llm.local import MODEL_ALIAS
    from .prompts import STAGES
    from .taxonomy import load_taxonomy

    taxonomy = load_taxonomy(args.taxonomy)
    settings = taxonomy.settings(args.preset)
    if any(getattr(settings, stage).base_urls for stage in STAGES):
        return None
    demo = "demo" if "demo" in taxonomy.presets else None
    return replace(run, model=args.model or MODEL_ALIAS, preset=args.preset or demo)


def _run_settings(args):
    from .pipeline import RunSettings

    return RunSettings(
        taxonomy=args.taxonomy, work_dir=args.work_dir, preset=args.preset, disciplines=tuple(args.disciplines),
        model=args.model, base_url=args.base_url, concurrency=args.concurrency, seed=args.seed,
        max_cost=args.max_cost, max_requests=args.max_requests, batch=args.batch, prices=tuple(args.price),
        progress=sys.stderr.isatty())


if __name__ == "__main__":
    sys.exit(main())
