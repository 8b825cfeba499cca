"""`glan estimate`: the requests, tokens and cost of a build, per stage, without calling an LLM.

The pipeline runs as `glan build` would, but the engine only replays the cache: what is cached gives
exact counts (and observed token averages) for the next stage; what is missing is extrapolated from
the settings (subjects per sample, questions per subject) or from what the cached part yielded.
Prompt tokens are counted as characters / 4; completion tokens without observations are the
stage's max_tokens, an upper bound.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

from . import preflight
from .build import check_card_template, depth_of, drive_units
from .config.resolve import Run, resolve
from .config.run import RunSettings
from .llm import loop
from .llm.accounting import Accounting
from .llm.cache import Cache, shared_cache_path
from .llm.engine import Engine
from .progress import Progress
from .stages import STAGES
from .unit import UnitStore

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


def estimate(settings: RunSettings, configs: list[str]) -> list[StageEstimate]:
    run = resolve(replace(settings, progress=False))
    preflight.check_templates(run)
    check_card_template(run, configs)
    store, depth = UnitStore(run), depth_of(configs)
    stages = STAGES[:depth]
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

    cache = Cache(shared_cache_path(run.work_dir))
    try:
        accounting = Accounting(run.prices, run.budget)
        # Offline: every request missing from the cache comes back skipped, none is sent.
        engine = Engine(cache, run.limits, accounting, offline=True)
        loop.run(drive_units(run, engine, missing, depth, store.benchmarks, tally, Progress(0, accounting, False)))
        for stage in stages:
            usage = accounting.stage_total(stage.name)
            replays[stage.name].planned += usage.succeeded + usage.failed + usage.skipped
            replays[stage.name].answered += usage.succeeded + usage.failed
            replays[stage.name].prompt_chars += usage.prompt_chars
        return [_stage_estimate(run, cache, stage, replays[stage], requests)
                for stage, requests in _requests(run, replays, depth).items()]
    finally:
        cache.close()


def _requests(run: Run, replays: dict[str, _Replay], last: int) -> dict[str, float]:
    """Requests per stage: the replayed items, plus what the items missing upstream would add."""
    settings = run.generation
    subjects, syllabi, questions = replays["subjects"], replays["syllabus"], replays["questions"]
    per_sample = (settings.subjects.per_sample.min + settings.subjects.per_sample.max) / 2
    # An item not answered from the cache yields what the answered ones did on average, or what the settings imply.
    subject_rows = subjects.rows + (subjects.planned - subjects.answered) * _rate(subjects, per_sample)
    syllabus_rows = syllabi.rows + (subject_rows - syllabi.answered) * _rate(syllabi, 1)
    question_rows = questions.rows + (syllabus_rows * settings.questions.per_subject - questions.answered) \
        * _rate(questions, 1)
    counts = {"subjects": subjects.planned, "syllabus": subject_rows,
              "questions": syllabus_rows * settings.questions.per_subject, "answers": question_rows}
    return dict(list(counts.items())[: last])


def _rate(replay: _Replay, default: float) -> float:
    """Rows per answered request, observed when the cache answered some of this stage."""
    return replay.rows / replay.answered if replay.answered else default


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
    return StageEstimate(stage, plan.route.model, requests, replay.answered, prompt_tokens, completion_tokens, cost,
                         observed)


def _template_tokens(run: Run, stage: str) -> float:
    """A stage with nothing to render yet (its inputs come from requests not made): the templates' own length."""
    path = run.settings.prompts_dir / f"{stage}.yaml"
    return len(path.read_text()) / CHARS_PER_TOKEN


def format_estimate(estimates: list[StageEstimate]) -> str:
    lines = [f"{'stage':<10} {'model':<16} {'requests':>9} {'cached':>7} {'to send':>8} {'tokens in':>11} "
             f"{'tokens out':>11} {'cost USD':>9}  tokens from"]
    for e in estimates:
        source = "cached responses" if e.observed else "prompt length, max_tokens (an upper bound)"
        lines.append(f"{e.stage:<10} {e.model:<16} {e.requests:>9,.0f} {e.cached:>7,} {e.to_send:>8,.0f} "
                     f"{e.prompt_tokens:>11,.0f} {e.completion_tokens:>11,.0f} {e.cost:>9.4f}  {source}")
    lines.append(f"{'total':<27} {sum(e.requests for e in estimates):>9,.0f} {sum(e.cached for e in estimates):>7,} "
                 f"{sum(e.to_send for e in estimates):>8,.0f} {sum(e.prompt_tokens for e in estimates):>11,.0f} "
                 f"{sum(e.completion_tokens for e in estimates):>11,.0f} {sum(e.cost for e in estimates):>9.4f}")
    lines.append("Requests after a stage that is not cached are extrapolated from the settings; "
                 "outputs that fail validation add retries on top.")
    return "\n".join(lines)


def estimate_command(settings: RunSettings, configs: list[str]) -> int:
    print(format_estimate(estimate(settings, configs)), file=sys.stdout)
    return 0
