"""The library: `glan.build()` and `glan.estimate()`, their async forms, and what they return (docs/api.md). The
command line is a thin layer on these: `glan build` and `glan estimate` parse their flags into the same
RunSettings and call `build_run` and `estimate_run` below.

A caller gets exceptions, never exit codes: `UserError` (and its kinds) for what the caller can fix, with the
fix in its one-line message, worded with the keyword arguments (`model=`) rather than the flags (`--model`). The
synchronous functions work where an event loop runs already (a Jupyter cell: llm/loop.py runs the build's own loop
in a worker thread); the async ones run the whole call in a worker thread, so the caller's loop goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import preflight

# What glan's package root re-exports (builder/__init__.py's __all__ lists the library's names once).
from .build import BuildResult as BuildResult
from .build import build as build_folder
from .config.run import DEFAULT_TAXONOMY, RunSettings
from .errors import UserError as UserError
from .estimate import Estimate as Estimate
from .estimate import StageEstimate as StageEstimate
from .estimate import estimate as estimate_folder
from .estimate import format_estimate
from .execute.serve import serving
from .llm.local_models import DEFAULT_LOCAL_MODEL
from .plan import Run, resolve
from .quality import BenchmarkIndex
from .stages import CONFIGS
from .wording import counted

log = logging.getLogger("glan")


# Asks the user whether a large build may start, given its estimate and why it needs asking; True: start it.
Confirm = Callable[[Estimate, str], bool]


class ConfirmationNeeded(UserError):
    """A build above generation.limits.confirm_above_requests or confirm_above_usd, not confirmed: nothing was
    sent. `estimate` is what it would have done."""

    def __init__(self, message: str, estimate: Estimate):
        super().__init__(message)
        self.estimate = estimate


def estimate(
    taxonomy: str | Path = DEFAULT_TAXONOMY, *, configs: str | Iterable[str] | None = None, **settings
) -> Estimate:
    """What `build()` with the same arguments would do, without sending a request or writing a file: per stage
    the requests (cached and to send), tokens and cost, and the train and test pairs it would yield.

    `settings` are build()'s, but for `out`, `yes` and `confirm`."""
    return worded_for_the_caller(lambda: estimate_run(run_settings(taxonomy, **settings), _configs(configs)))


def build(
    taxonomy: str | Path = DEFAULT_TAXONOMY,
    *,
    out: str | Path = "dist",
    configs: str | Iterable[str] | None = None,
    yes: bool = False,
    confirm: Confirm | None = None,
    **settings,
) -> BuildResult:
    """Build the dataset of `taxonomy` into the folder `out` and return what it made and spent.

    Settings (each optional; a list argument also takes one string, which is one item, never split at commas):

    - `pairs`: about this many train pairs (chooses subjects, questions per subject and disciplines);
    - `overrides`: generation settings over the preset's, by dotted key, e.g. {"questions.per_subject": 10};
    - `preset`, `disciplines` (names or ids), `configs` (default: every config), `model`, `base_url`, `prompts`,
      `work_dir` (default ".glan"), `seed`, `prices` ({model: (USD per M input tokens, per M output)}), `batch`,
      `concurrency`, `max_cost`, `max_requests`, `max_failure_rate`, `executor` ("local" or "ray"),
      `ray_address`, `local_model` (the embedded model used when no endpoint is configured), `progress` (a
      progress bar; default: when stderr is a terminal).

    A build estimated above generation.limits.confirm_above_requests or confirm_above_usd starts only with
    `yes=True`, or when `confirm(estimate, reason)` returns True; otherwise it raises ConfirmationNeeded and sends
    nothing. A build that a budget or too many failures stopped returns with `complete` False and `stop_reason`;
    bad input raises a UserError."""
    return worded_for_the_caller(
        lambda: build_run(run_settings(taxonomy, **settings), Path(out), _configs(configs), yes=yes, confirm=confirm)
    )


async def aestimate(taxonomy: str | Path = DEFAULT_TAXONOMY, **arguments) -> Estimate:
    """`estimate()` in a worker thread: awaiting it leaves the caller's event loop free."""
    return await asyncio.to_thread(estimate, taxonomy, **arguments)


async def abuild(taxonomy: str | Path = DEFAULT_TAXONOMY, **arguments) -> BuildResult:
    """`build()` in a worker thread (with its own event loop): awaiting it leaves the caller's event loop free.
    Cancelling the awaiting task does not stop the build; `max_requests` and `max_cost` bound it."""
    return await asyncio.to_thread(build, taxonomy, **arguments)


def estimate_run(settings: RunSettings, configs: list[str]) -> Estimate:
    """The estimate of the run `settings` ask for (`glan estimate`), priced as a build would run it: on the
    embedded model if no endpoint is configured (no server is started)."""
    return estimate_folder(planned(settings), configs)


def build_run(
    settings: RunSettings, out: Path, configs: list[str], *, yes: bool = False, confirm: Confirm | None = None
) -> BuildResult:
    """The build `settings` ask for (`glan build`), once its size is confirmed (see build())."""
    run = planned(settings)
    benchmarks = preflight.check_benchmarks(run)  # read once: the size check and the build both need them
    check_size(run, configs, yes, confirm, benchmarks=benchmarks)
    with serving(run) as served:
        return build_folder(served, out, configs, benchmarks)


def planned(settings: RunSettings) -> Run:
    """The run, planned once (builder/plan.py); says so when it uses the prompts shipped with glan."""
    run = resolve(settings)
    chosen = ", ".join(ref.discipline_id for ref in run.disciplines)
    log.debug(f"glan: {counted(len(run.disciplines), 'discipline')}: {chosen}")
    for plan in run.stages.values():
        urls = ", ".join(endpoint.base_url for endpoint in plan.route.endpoints)
        log.debug(
            f"glan: {plan.name}: {plan.route.model} at {urls}, prompt {plan.prompt.path} "
            f"({plan.prompt.fingerprint}), params {plan.params}{', Batch API' if plan.batch else ''}"
        )
    if run.prompts_shipped:
        log.info(
            f"glan: no prompts/ beside {settings.taxonomy}: using the prompts shipped with glan ({run.prompts_dir}). "
            "`glan init DIR` writes a copy to edit; --prompts DIR names another folder."
        )
    return run


def check_size(
    run: Run,
    configs: list[str],
    yes: bool = False,
    confirm: Confirm | None = None,
    agree: str = "Pass --yes to start it",
    benchmarks: list[BenchmarkIndex] | None = None,
) -> None:
    """Raises ConfirmationNeeded for a build above the thresholds that the user has not agreed to (`agree` says how
    to agree, when there is a way). The bound without replaying the cache is checked first: a build it keeps under
    the thresholds replays nothing twice. `benchmarks`: the run's, read once by the caller."""
    if benchmarks is None:
        benchmarks = preflight.check_benchmarks(run)
    if estimate_folder(run, configs, replay=False, benchmarks=benchmarks).confirmation_reason(run.budget) is None:
        return
    estimate = estimate_folder(run, configs, benchmarks=benchmarks)
    reason = estimate.confirmation_reason(run.budget)
    if reason is None:
        return
    # Warnings, so that -q and a library caller with no logging set up still see what they are agreeing to.
    log.warning(format_estimate(estimate))
    if yes:
        log.warning(f"glan: starting although {reason}: --yes was given.")
        return
    if confirm is None:
        raise ConfirmationNeeded(
            f"not started: {reason} (the estimate is above). {agree}{', ' if agree else 'Pass '}--pairs N to size it "
            "to about N train pairs, or raise generation.limits.confirm_above_requests and confirm_above_usd.",
            estimate,
        )
    if not confirm(estimate, reason):
        raise ConfirmationNeeded("not started: the build was not confirmed. Nothing was sent.", estimate)


def run_settings(taxonomy: str | Path = DEFAULT_TAXONOMY, **settings: Any) -> RunSettings:
    """RunSettings from keyword arguments as a Python caller gives them: a list argument takes one string (one
    item) or any iterable; `prices` a mapping of model to (input, output) USD per million tokens; `overrides` a
    mapping of dotted keys to values. The embedded model runs when no endpoint is configured, as on the command
    line."""
    known = {setting.name for setting in fields(RunSettings)} - {"taxonomy"}
    for name in settings:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the settings are {', '.join(sorted(known))}"
            raise TypeError(f"unknown setting {name!r}{hint}")
    if isinstance(settings.get("disciplines"), str):
        settings["disciplines"] = (settings["disciplines"],)
    settings["disciplines"] = tuple(settings.get("disciplines") or ())
    if isinstance(prices := settings.get("prices"), Mapping):
        settings["prices"] = tuple((model, *map(float, price)) for model, price in prices.items())
    if isinstance(overrides := settings.get("overrides"), Mapping):
        settings["overrides"] = tuple(overrides.items())
    settings.setdefault("local_model", DEFAULT_LOCAL_MODEL)
    settings.setdefault("progress", sys.stderr.isatty())
    for name in ("work_dir", "prompts"):
        if isinstance(settings.get(name), Path):
            settings[name] = str(settings[name])
    return RunSettings(taxonomy=str(taxonomy), **settings)


def _configs(configs: str | Iterable[str] | None) -> list[str]:
    chosen = list(CONFIGS) if configs is None else [configs] if isinstance(configs, str) else list(configs)
    unknown = [config for config in chosen if config not in CONFIGS]
    if unknown or not chosen:
        raise UserError(f"configs: unknown config {', '.join(map(repr, unknown))}; choose from {', '.join(CONFIGS)}")
    return chosen


# A flag in a message, as a Python caller passes it.
_KEYWORDS = {
    "--yes": "yes=True",
    "--batch": "batch=True",
    "--set": "overrides=",
    "--price": "prices=",
    "--pairs N": "pairs=N",
}
_FLAG = re.compile(
    "|".join(re.escape(flag) for flag in sorted(_KEYWORDS, key=len, reverse=True)) + r"|--([a-z][a-z-]*[a-z])"
)


def worded_for_the_caller(call: Callable[[], Any]) -> Any:
    """`call()`, its UserError's message naming keyword arguments where it names flags."""
    try:
        return call()
    except UserError as error:
        if error.args and isinstance(error.args[0], str):
            error.args = (
                _FLAG.sub(
                    lambda flag: _KEYWORDS.get(flag.group(0)) or flag.group(1).replace("-", "_") + "=", error.args[0]
                ),
                *error.args[1:],
            )
        raise
