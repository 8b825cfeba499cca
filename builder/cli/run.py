"""What the commands that run the pipeline share (`glan build`, `glan estimate`, `glan taxonomy propose`): the run
flags, and the run planned from them once (builder/plan.py), on a configured endpoint or the embedded default
(so one command line prices the other)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.run import DEFAULT_TAXONOMY, DEFAULT_WORK_DIR, ENDPOINT_PRECEDENCE, RunSettings
from ..configs import CONFIGS
from ..llm.local_models import DEFAULT_LOCAL_MODEL, LOCAL_MODELS
from . import completion
from .args import fraction, positive_number, price, whole_number

if TYPE_CHECKING:
    from ..plan import Run

log = logging.getLogger("glan")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _selectors(text: str) -> list[str]:
    """--disciplines as given: the plan splits it (a discipline's name may hold a comma)."""
    return [text] if text.strip() else []


def _configs(text: str) -> list[str]:
    configs = _csv(text)
    unknown = [config for config in configs if config not in CONFIGS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown config {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    return configs


def _price(text: str) -> tuple:
    """MODEL=IN,OUT[,CACHED] as (model, in, out[, cached]): the plan prices cached input as input unless named."""
    model, _, prices = text.rpartition("=")
    try:
        figures = [price(part) for part in prices.split(",")]
        if len(figures) not in (2, 3):
            raise ValueError
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected MODEL=IN,OUT or MODEL=IN,OUT,CACHED_IN in USD per million tokens (finite, at least "
            "0), e.g. gpt-4o-mini=0.15,0.6,0.075"
        ) from None
    if not model:
        raise argparse.ArgumentTypeError(f"{text!r}: no model name before '='; e.g. gpt-4o-mini=0.15,0.6")
    return (model, *figures)


def selection_flags(preset_help: str) -> argparse.ArgumentParser:
    """What `glan build` and `glan estimate` share: what to build, with which models, at which prices."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--taxonomy", default=DEFAULT_TAXONOMY, help="the taxonomy file (`glan init` writes one)")
    flags.add_argument(
        "--prompts",
        help="folder of prompt files (default: prompts/ beside the taxonomy, else the prompts shipped with glan)",
    )
    flags.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help="the response cache and run state")
    completion.completes(flags.add_argument("--preset", help=preset_help), completion.presets)
    disciplines = flags.add_argument(
        "--disciplines",
        type=_selectors,
        default="",
        help='names, ids or patterns, comma-separated ("Mathematics/*", "*/Chemistry/*", "*-chemistry"), or '
        "@FILE of one a line; a name with commas is matched whole (`glan taxonomy list` lists them; default: "
        "every discipline, or the preset's)",
    )
    completion.completes(disciplines, completion.disciplines)
    flags.add_argument("--configs", type=_configs, default=",".join(CONFIGS), help="configs to write, comma-separated")
    flags.add_argument(
        "--model",
        help="model for every stage (default: the taxonomy's per-stage models; with no "
        "endpoint, the embedded local model)",
    )
    flags.add_argument(
        "--base-url",
        help=f"OpenAI-compatible endpoint for every stage. Where a stage's requests go, the first that applies: "
        f"{ENDPOINT_PRECEDENCE}",
    )
    flags.add_argument(
        "--seed", type=whole_number(0), help="seed of question sampling (default: the taxonomy's or preset's)"
    )
    flags.add_argument(
        "--price",
        action="append",
        type=_price,
        default=[],
        metavar="MODEL=IN,OUT[,CACHED]",
        help="USD per million input and output tokens of MODEL, and of input served from the endpoint's prompt cache "
        "(default: the input price) (repeatable; default: the taxonomy's prices)",
    )
    flags.add_argument(
        "--batch",
        action="store_true",
        help="send every stage's uncached requests through the OpenAI Batch API (half price, "
        "done within 24 h; a rerun resumes the saved batches)",
    )
    flags.add_argument("--local-model", **local_model_flag())
    return flags


def build_flags() -> argparse.ArgumentParser:
    """What only `glan build` takes: where the folder goes, and the limits of a run that sends requests."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--out", default="dist", type=Path, help="the dataset folder to write")
    flags.add_argument(
        "--concurrency",
        type=whole_number(1),
        help="max requests in flight per endpoint (default: the taxonomy's limits.concurrency)",
    )
    flags.add_argument(
        "--max-failure-rate",
        type=fraction,
        help="exit 1 when a larger share of items fails (default: the taxonomy's limits.max_failure_rate)",
    )
    flags.add_argument(
        "--max-cost", type=positive_number, help="stop cleanly after spending this many USD (default: no limit)"
    )
    flags.add_argument(
        "--max-requests", type=whole_number(1), help="stop cleanly after sending this many requests (default: no limit)"
    )
    return flags


def preset_help(argv: list[str]) -> str:
    """--preset's help, naming the presets of the taxonomy on the command line (or ./taxonomy.yaml).
    The taxonomy is read only when help is asked for, and a taxonomy that does not load fails nothing."""
    text = "named override of the taxonomy's generation settings"
    if not {"-h", "--help"} & set(argv):
        return text
    from ..taxonomy import TaxonomyError, load_taxonomy

    path = next((value for flag, value in zip(argv, argv[1:], strict=False) if flag == "--taxonomy"), None)
    path = path or next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--taxonomy=")), DEFAULT_TAXONOMY)
    try:
        presets = sorted(load_taxonomy(path).presets)
    except TaxonomyError:
        return f"{text} (none listed: {path} does not load; `glan taxonomy validate {path}` says why)"
    return f"{text}: one of {', '.join(presets)} (from {path})" if presets else f"{text} ({path} has none)"


def local_model_flag() -> dict:
    """argparse keywords of --local-model, which `glan serve-local` shares."""
    return {
        "choices": list(LOCAL_MODELS),
        "default": DEFAULT_LOCAL_MODEL,
        # The help formatter adds the default.
        "help": "the embedded model run when no endpoint is configured: "
        f"{', '.join(f'{name} ({model.label})' for name, model in LOCAL_MODELS.items())}",
    }


def run_settings(args, **flags) -> RunSettings:
    """The RunSettings of a command's arguments; `flags` are the command's own (e.g. the executor)."""
    asked = dict(
        taxonomy=args.taxonomy,
        prompts=args.prompts,
        work_dir=args.work_dir,
        preset=args.preset,
        disciplines=tuple(getattr(args, "disciplines", ())),
        model=args.model,
        base_url=args.base_url,
        concurrency=getattr(args, "concurrency", None),
        seed=getattr(args, "seed", None),
        max_cost=getattr(args, "max_cost", None),
        max_requests=getattr(args, "max_requests", None),
        max_failure_rate=getattr(args, "max_failure_rate", None),
        batch=getattr(args, "batch", False),
        prices=tuple(getattr(args, "price", ())),
        progress=sys.stderr.isatty() and getattr(args, "verbosity", logging.INFO) <= logging.INFO,
        local_model=args.local_model,
    )
    return RunSettings(**{**asked, **flags})


def resolved(args, **flags) -> Run:
    """The command's run, planned once (builder/plan.py) as the library plans it."""
    from ..api import planned

    return planned(run_settings(args, **flags))
