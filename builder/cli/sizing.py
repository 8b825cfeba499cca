"""The flags that size a run (`glan build`, `glan estimate`): --pairs and --set; and what lets a large build start
(--yes, or the user's answer on a terminal)."""

from __future__ import annotations

import argparse
import sys

from ..config.overrides import OverrideError, parse_override
from .args import whole_number


def _override(text: str):
    try:
        return parse_override(text)
    except OverrideError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--set: ")) from None


def sizing_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--pairs",
        type=whole_number(1),
        metavar="N",
        help="about N train pairs: chooses subjects, questions per subject and disciplines (the estimate "
        "states the pairs; default: as many as the settings make)",
    )
    flags.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_override,
        default=[],
        metavar="KEY=VALUE",
        help="a generation setting over the taxonomy's and the preset's, by its dotted key, the value read as "
        "YAML, e.g. --set questions.per_subject=10 (repeatable)",
    )
    return flags


def yes_flag() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--yes",
        action="store_true",
        help="start a build above generation.limits.confirm_above_requests or confirm_above_usd without "
        "asking (on a terminal glan asks; elsewhere such a build needs --yes)",
    )
    return flags


def sizing(args) -> dict:
    """The RunSettings of the sizing flags."""
    return {"pairs": args.pairs, "overrides": tuple(args.overrides)}


def terminal_confirm():
    """Asks on the terminal whether a large build may start; None off a terminal (then only --yes starts it)."""
    if not sys.stdin.isatty():
        return None

    def ask(estimate, reason: str) -> bool:
        print(f"glan: {reason}. Start this build? [y/N] ", end="", file=sys.stderr, flush=True)
        try:
            return input().strip().lower() in ("y", "yes")
        except EOFError:
            return False

    return ask
