"""Everything that can be checked before the first request is checked here, so that bad input costs nothing:
where the folder and the work dir go (a build replaces only a folder glan wrote, never one that holds the
project, the current directory or the work dir), prices when a budget is set in USD, every stage's prompt
rendered with that stage's real variables, the benchmarks decontamination checks against (read and indexed once
per build, before the work dir is locked). (That each endpoint the missing units need can be reached at all is
checked by the executors, where the units run: builder/llm/reach.py.)"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from .errors import UserError
from .plan import Run
from .publish.export import check_replaceable, incomplete_folder
from .quality import BenchmarkIndex, load_benchmarks


class PreflightError(UserError):
    """Bad input found before any request; the message says what and what to do."""


def check_paths(out: Path, run: Run) -> None:
    """--out names a folder the build may replace, and nothing it must not touch; both folders can be written."""
    if out.exists() and not out.is_dir():
        raise PreflightError(
            f"{out}: --out names an existing file, not a folder. Pass a folder path for the dataset "
            "(it is created, or replaced only by a complete build)."
        )
    target, work_dir = out.resolve(), run.work_dir.resolve()
    kept = (
        ("the current directory", Path.cwd().resolve()),
        ("the taxonomy's folder", Path(run.settings.taxonomy).resolve().parent),
        ("the work dir", work_dir),
    )
    for name, folder in kept:
        if folder.is_relative_to(target):
            what = name if folder == target else f"a folder that holds {name} ({folder})"
            raise PreflightError(
                f"{out}: --out is {what}, and a build replaces the whole folder at --out. Pass a "
                "folder of its own, e.g. dist beside the taxonomy."
            )
    if target.is_relative_to(work_dir):
        raise PreflightError(
            f"{out}: --out is inside the work dir ({work_dir}), which glan manages. Pass a folder "
            "outside it, e.g. dist beside the taxonomy."
        )
    for folder in (out, incomplete_folder(out)):
        check_replaceable(folder)
    for folder, flag in ((out.parent, "--out"), (run.work_dir, "--work-dir")):
        _check_writable(folder, flag)


def _check_writable(folder: Path, flag: str) -> None:
    probe = folder / f".glan-write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as error:
        raise PreflightError(
            f"{folder}: cannot write there ({error.strerror or error}). Pass a writable {flag}, "
            "or make this one writable."
        ) from None


def check_prices(run: Run) -> None:
    if run.budget.max_cost is None:
        return
    unpriced = sorted({plan.route.model for plan in run.stages.values()} - set(run.prices))
    if unpriced:
        example = unpriced[0]
        raise PreflightError(
            f"--max-cost: no price for {', '.join(unpriced)}, so the cost could not be counted. Give every model a "
            f"price: --price {example}=IN,OUT (USD per million input and output tokens), or generation.prices in "
            "the taxonomy."
        )


def check_benchmarks(run: Run) -> list[BenchmarkIndex]:
    """The run's benchmarks, read and indexed: once per build, for every unit's decontamination and fingerprint. One
    that cannot be read is a BenchmarkError line naming it, before the work dir is locked and before any request."""
    return load_benchmarks(run.generation.quality.decontamination)


def check_templates(run: Run) -> None:
    """Render each stage's prompt once, with variables made the way the stage makes them from an example output
    of the stage before, under StrictUndefined and in the template sandbox: a misspelt variable, or an access the
    sandbox refuses, fails here, not after requests are paid."""
    parents = [vars(run.disciplines[0])] if run.disciplines else []
    for plan in run.stages.values():
        if not parents:
            return
        stage = plan.make()
        item = next(iter(stage.inputs(parents)))
        plan.prompt.render(**stage.context(item))  # a PromptError names the file and the template line
        parents = stage.parse(item, [_as_output(stage.example)])


def _as_output(value):
    """An example output with the attribute access of the pydantic model the LLM's reply is read into."""
    if isinstance(value, dict):
        return SimpleNamespace(**{key: _as_output(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_as_output(item) for item in value]
    return value
