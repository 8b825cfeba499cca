"""`glan estimate`: the requests, tokens and cost of a build, per stage, without calling an LLM.

The pipeline runs as `glan build` would, but the engine only replays the cache: what is cached gives
exact counts (and observed token averages) for the next stage; what is missing is extrapolated from
the settings (subjects per sample, questions per subject) or from what the cached part yielded.
Prompt tokens are counted as characters / 4; completion tokens without observations are the
stage's max_tokens, an upper bound.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from . import preflight
from .execute.engine import engine_for
from .execute.local import drive_units
from .execute.progress import Progress
from .llm import loop
from .llm.accounting import Accounting
from .llm.cache import Cache
from .plan import Run
from .prompts import prompt_path
from .publish.card import check_card_template
from .stages import STAGES, depth_of, refines
from .unit.store import UnitStore

CHARS_PER_TOKEN = 4
DEFAULT_COMPLETION_TOKENS = 1024  # a stage whose prompt file sets no max_tokens


@dataclass
class StageEstimate:
    stage: str
    model: str
    requests: float  # one per item and sample; retries of faulted outputs come on top
    cached: int
    prompt_tokens: float
    completion_tokens: float
    cost: float
    observed: bool  # token figures are averages of cached responses, not template lengths and max_tokens

    @property
    def to_send(self) -> float:
        return max(0.0, self.requests - self.cached)


@dataclass
class _Replay:
    """What replaying one stage from the cache gave: planned, answered from the cache, rows out."""

    planned: int = 0
    answered: int = 0
    rows: int = 0
    prompt_chars: int = 0  # of the planned requests not answered


def estimate(run: Run, configs: list[str]) -> list[StageEstimate]:
    preflight.check_templates(run)
    check_card_template(run, configs)
    store, depth = UnitStore(run), depth_of(configs)
    stages = run.chain(depth)
    replays = {stage.name: _Replay() for stage in STAGES}
    missing = []
    for ref in run.disciplines:
        unit = store.find(ref, depth)
        if unit is None:
            missing.append(ref)
            continue
        for stage in stages:  # a complete unit: every request of it is cached
            answered = unit.requests[stage.name]["succeeded"] + unit.requests[stage.name]["failed"]
            replays[stage.name].planned += answered
            replays[stage.name].answered += answered
            replays[stage.name].rows += sum(split["rows"] for split in unit.files.get(stage.config, {}).values())

    async def tally(ref, result) -> None:
        for stage in stages:
            replays[stage.name].rows += sum(len(rows) for rows in result.rows.get(stage.config, {}).values())

    # Offline: every request missing from the cache comes back skipped, none is sent.
    with engine_for(run, offline=True) as engine:
        accounting = engine.accounting
        loop.run(drive_units(run, engine, missing, depth, store.benchmarks, tally, Progress(0, accounting, False)))
        for stage in stages:
            usage = accounting.stage_total(stage.name)
            replays[stage.name].planned += usage.succeeded + usage.failed + usage.skipped
            replays[stage.name].answered += usage.succeeded + usage.failed
            replays[stage.name].prompt_chars += usage.prompt_chars
        for stage, after in zip(stages, stages[1:], strict=False):
            if refines(after):  # the rows the stage gave are the next one's requests (what is left after it, fewer)
                replays[stage.name].rows = replays[after.name].planned
        return [
            _stage_estimate(run, engine.cache, stage, replays[stage], requests)
            for stage, requests in run.expected_requests(
                depth, {name: (replay.answered, replay.rows) for name, replay in replays.items()}
            ).items()
        ]


def _stage_estimate(run: Run, cache: Cache, stage: str, replay: _Replay, requests: float) -> StageEstimate:
    plan = run.stages[stage]
    sums = [cache.token_sums(stage)]
    for path in sorted((run.work_dir / "cache").glob("*.sqlite")):
        unit_cache = Cache(path)
        sums.append(unit_cache.token_sums(stage))
        unit_cache.close()
    responses = sum(count for count, _, _ in sums)
    observed = responses > 0
    if observed:  # the mean tokens of the stage's cached responses
        prompt, completion = (sum(part[i] for part in sums) / responses for i in (1, 2))
    else:
        skipped = replay.planned - replay.answered
        prompt = replay.prompt_chars / skipped / CHARS_PER_TOKEN if skipped else _template_tokens(run, stage)
        completion = plan.params.get("max_tokens", DEFAULT_COMPLETION_TOKENS)
    prompt_tokens, completion_tokens = requests * prompt, requests * completion
    cost = Accounting(run.prices).cost(plan.route.model, prompt_tokens, completion_tokens, batch=plan.batch)
    return StageEstimate(
        stage, plan.route.model, requests, replay.answered, prompt_tokens, completion_tokens, cost, observed
    )


def _template_tokens(run: Run, stage: str) -> float:
    """A stage with nothing to render yet (its inputs come from requests not made): the templates' own length."""
    path = prompt_path(run.prompts_dir, stage)
    return len(path.read_text()) / CHARS_PER_TOKEN


def format_estimate(estimates: list[StageEstimate]) -> str:
    lines = [
        f"{'stage':<10} {'model':<16} {'requests':>9} {'cached':>7} {'to send':>8} {'tokens in':>11} "
        f"{'tokens out':>11} {'cost USD':>9}  tokens from"
    ]
    for e in estimates:
        source = "cached responses" if e.observed else "prompt length, max_tokens (an upper bound)"
        lines.append(
            f"{e.stage:<10} {e.model:<16} {e.requests:>9,.0f} {e.cached:>7,} {e.to_send:>8,.0f} "
            f"{e.prompt_tokens:>11,.0f} {e.completion_tokens:>11,.0f} {e.cost:>9.4f}  {source}"
        )
    lines.append(
        f"{'total':<27} {sum(e.requests for e in estimates):>9,.0f} {sum(e.cached for e in estimates):>7,} "
        f"{sum(e.to_send for e in estimates):>8,.0f} {sum(e.prompt_tokens for e in estimates):>11,.0f} "
        f"{sum(e.completion_tokens for e in estimates):>11,.0f} {sum(e.cost for e in estimates):>9.4f}"
    )
    lines.append(
        "Requests after a stage that is not cached are extrapolated from the settings; "
        "outputs that fail validation add retries on top."
    )
    return "\n".join(lines)


def estimate_command(run: Run, configs: list[str]) -> int:
    print(format_estimate(estimate(run, configs)), file=sys.stdout)
    return 0
