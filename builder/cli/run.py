"""What `glan build` and `glan estimate` share: the run flags, and the choice between a configured endpoint
and the embedded default (so one command line prices the other)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..stages import CONFIGS


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


def run_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--taxonomy", default="taxonomy.yaml")
    flags.add_argument("--out", default="dist", type=Path)
    flags.add_argument("--work-dir", default=".glan")
    flags.add_argument("--preset")
    flags.add_argument("--disciplines", type=_csv, default=[], help="names or ids, comma-separated")
    flags.add_argument("--configs", type=_csv, default=list(CONFIGS), help=",".join(CONFIGS))
    flags.add_argument("--model", help="model for every stage (overrides the taxonomy's per-stage models)")
    flags.add_argument("--base-url", help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL, then OpenAI)")
    flags.add_argument("--concurrency", type=int, help="max requests in flight per endpoint")
    flags.add_argument("--seed", type=int)
    flags.add_argument("--max-failure-rate", type=float,
                       help="exit 1 when a larger share of items fails (default: limits.max_failure_rate, 1%%)")
    flags.add_argument("--max-cost", type=float, help="stop cleanly after spending this many USD")
    flags.add_argument("--price", action="append", type=_price, default=[], metavar="MODEL=IN,OUT",
                       help="USD per million input and output tokens of MODEL (repeatable; overrides the taxonomy)")
    flags.add_argument("--max-requests", type=int, help="stop cleanly after sending this many requests")
    flags.add_argument("--batch", action="store_true",
                       help="send every stage's uncached requests through the OpenAI Batch API (half price, "
                            "done within 24 h; a rerun resumes the saved batches)")
    return flags


def run_settings(args):
    from ..config.run import RunSettings

    return RunSettings(
        taxonomy=args.taxonomy, work_dir=args.work_dir, preset=args.preset, disciplines=tuple(args.disciplines),
        model=args.model, base_url=args.base_url, concurrency=args.concurrency, seed=args.seed,
        max_cost=args.max_cost, max_requests=args.max_requests, batch=args.batch, prices=tuple(args.price),
        progress=sys.stderr.isatty())


def with_endpoint(args, run, action) -> int:
    """Run `action(run)` against the configured endpoint, or else against the embedded default."""
    embedded = embedded_run(args, run)
    if embedded is None:
        return action(run)
    from ..config.resolve import resolve
    from ..llm.local import LocalServer

    resolve(replace(embedded, base_url="http://127.0.0.1"))  # bad input fails before the server starts
    with LocalServer() as server:
        return action(replace(embedded, base_url=server.base_url))


def embedded_run(args, run):
    """`run` on the embedded model, with the demo preset (if the taxonomy has one) so a CPU build takes
    minutes; None when an endpoint is named by flag, environment or taxonomy."""
    if args.base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        return None
    from ..llm.local import MODEL_ALIAS
    from ..stages import STAGE_NAMES
    from ..taxonomy import load_taxonomy

    taxonomy = load_taxonomy(args.taxonomy)
    settings = taxonomy.settings(args.preset)
    if any(getattr(settings, stage).base_urls for stage in STAGE_NAMES):
        return None
    demo = "demo" if "demo" in taxonomy.presets else None
    return replace(run, model=args.model or MODEL_ALIAS, preset=args.preset or demo)
