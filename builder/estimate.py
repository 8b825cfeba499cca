"""`glan estimate`: the requests, tokens and cost of a build, per stage, without calling an LLM.

The pipeline runs as `glan build` would, but the engine only replays the cache: what is cached gives
exact counts (and observed token averages) for the next stage; what is missing is extrapolated from
the settings (subjects per sample, questions per subject) or from what the cached part yielded.
Prompt tokens are counted as characters / 4; completion tokens without observations are the
stage's max_tokens, an upper bound. Cached input (the prefix an endpoint's prompt cache serves, billed at
`cached_input_per_million`) is the cached responses' share where there are some, else what the prompt cache
model (builder/llm/prompt_cache.py) gives of the prompts rendered; a stage not rendered yet whose requests share
their input's text (the questions: a subject's syllabus) shares it but for the first request of each input.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from . import preflight
from .execute.engine import engine_for
from .execute.local import drive_units
from .execute.progress import Progress
from .llm import loop
from .llm.accounting import Accounting, Budget
from .llm.cache import UNIT_CACHES, Cache
from .llm.prompt_cache import rule_for
from .plan import Run
from .prompts import prompt_path
from .publish.card import check_card_template
from .quality import BenchmarkIndex
from .stages import CONFIGS, DEFAULT_CONFIG, STAGE_NAMES, STAGES, Stage, depth_of, refines
from .unit.store import UnitStore
from .wording import counted

CHARS_PER_TOKEN = 4
DEFAULT_COMPLETION_TOKENS = 1024  # a stage whose prompt file sets no max_tokens
TokenSums = tuple[int, int, int, int]  # Cache.token_sums: responses, prompt, completion and cached prompt tokens
NO_RESPONSES: TokenSums = (0, 0, 0, 0)


@dataclass
class StageEstimate:
    stage: str
    model: str
    requests: float  # one per item and sample; retries of faulted outputs come on top
    cached: int
    prompt_tokens: float
    completion_tokens: float
    cost: float  # as the build would pay it: cached input at its price, through the Batch API where the stage is
    observed: bool  # token figures are averages of cached responses, not template lengths and max_tokens
    cached_tokens: float = 0.0  # of prompt_tokens, those the endpoint's prompt cache would serve
    cost_uncached: float = 0.0  # as `cost`, every input token at the input price
    cost_batch: float = 0.0  # every request through the Batch API (half price), cached input at its price
    priced: bool = True  # the run has a price for the model (--price, generation.prices); costs are 0 without

    @property
    def to_send(self) -> float:
        return max(0.0, self.requests - self.cached)


@dataclass
class Estimate:
    """What a build with the same settings would do: per stage (iterating an Estimate gives its StageEstimates),
    the pairs it would yield, and whether it is large enough to need the user's word (`confirmation_reason`)."""

    stages: list[StageEstimate]
    train_pairs: float  # of the instructions config, by the settings (dedup and failures drop a few percent more)
    test_pairs: float
    disciplines: int
    confirm_above_requests: int  # generation.limits: a build above either starts only once the user says so
    confirm_above_usd: float
    work_dir: str = ""  # whose cache and units it read: a build with another work dir sends what that one lacks

    def __iter__(self) -> Iterator[StageEstimate]:
        return iter(self.stages)

    @property
    def requests(self) -> float:
        return sum(stage.requests for stage in self.stages)

    @property
    def to_send(self) -> float:
        return sum(stage.to_send for stage in self.stages)

    @property
    def prompt_tokens(self) -> float:
        return sum(stage.prompt_tokens for stage in self.stages)

    @property
    def completion_tokens(self) -> float:
        return sum(stage.completion_tokens for stage in self.stages)

    @property
    def cost(self) -> float:
        """USD of the priced stages (`unpriced` names the models left out), an upper bound until responses are
        cached. Uncached requests only: what is cached is paid already."""
        return sum(stage.cost * stage.to_send / stage.requests for stage in self.stages if stage.requests)

    @property
    def unpriced(self) -> list[str]:
        """The models of stages with requests to send and no price."""
        return sorted({stage.model for stage in self.stages if not stage.priced and stage.to_send})

    def confirmation_reason(self, budget: Budget | None = None) -> str | None:
        """Why this build needs the user's word before it starts (requests or USD above generation.limits'
        confirm_above_*), or None. A budget (--max-requests, --max-cost) within the thresholds is that word: the
        build stops there."""
        most_requests = budget.max_requests if budget and budget.max_requests else math.inf
        most_cost = budget.max_cost if budget and budget.max_cost else math.inf
        if self.to_send > self.confirm_above_requests and most_requests > self.confirm_above_requests:
            return (
                f"it would send about {self.to_send:,.0f} requests, more than limits.confirm_above_requests "
                f"({self.confirm_above_requests:,})"
            )
        if self.cost > self.confirm_above_usd and most_cost > self.confirm_above_usd:
            return (
                f"it could cost up to {self.cost:,.2f} USD, more than limits.confirm_above_usd "
                f"({self.confirm_above_usd:g})"
            )
        return None

    def to_dict(self) -> dict:
        """The estimate as JSON-able data (what `--json` prints)."""
        return {
            "stages": [{**asdict(stage), "to_send": stage.to_send} for stage in self.stages],
            "train_pairs": self.train_pairs,
            "test_pairs": self.test_pairs,
            "disciplines": self.disciplines,
            "confirm_above_requests": self.confirm_above_requests,
            "confirm_above_usd": self.confirm_above_usd,
            "requests": self.requests,
            "to_send": self.to_send,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "unpriced": self.unpriced,
            "work_dir": self.work_dir,
        }


@dataclass
class _Replay:
    """What replaying one stage from the cache gave: planned, answered from the cache, rows out."""

    planned: int = 0
    answered: int = 0
    rows: int = 0
    prompt_chars: int = 0  # of the planned requests not answered
    cached_chars: int = 0  # of those, what the endpoint's prompt cache would serve


def estimate(
    run: Run, configs: list[str], *, replay: bool = True, benchmarks: list[BenchmarkIndex] | None = None
) -> Estimate:
    """The estimate of `glan build` with the same run and configs. Writes nothing, not even the work dir.
    `replay=False` opens no cache: the requests of units not complete yet all count as to send, and tokens are
    the templates' lengths and max_tokens, a bound that costs no replay (a build checks it first: api.py).
    `benchmarks`: the run's, when the caller has read them already (preflight.check_benchmarks)."""
    preflight.check_templates(run)
    check_card_template(run, configs)
    if benchmarks is None:
        benchmarks = preflight.check_benchmarks(run)
    store, depth = UnitStore(run, benchmarks), depth_of(configs)
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

    # Replaying, offline: every request missing from the cache comes back skipped, none is sent. Without, no cache
    # is opened: by the settings and the complete units alone.
    sums: dict[str, TokenSums] = {}
    with engine_for(run, offline=True) if replay else contextlib.nullcontext() as engine:
        if engine is not None:
            accounting = engine.accounting
            loop.run(drive_units(run, engine, missing, depth, store.benchmarks, tally, Progress(0, accounting, False)))
            for stage in stages:
                usage = accounting.stage_total(stage.name)
                replays[stage.name].planned += usage.succeeded + usage.failed + usage.skipped
                replays[stage.name].answered += usage.succeeded + usage.failed
                replays[stage.name].prompt_chars += usage.prompt_chars
                replays[stage.name].cached_chars += usage.cached_chars
            for stage, after in zip(stages, stages[1:], strict=False):
                if refines(after):  # the rows the stage gave are the next one's requests (what is left after it)
                    replays[stage.name].rows = replays[after.name].planned
            sums = _token_sums(run, engine.cache)
    observed = {name: (replayed.answered, replayed.rows) for name, replayed in replays.items()}
    stage_estimates: list[StageEstimate] = []
    for name, requests in run.expected_requests(depth, observed).items():
        stage_estimates.append(
            _stage_estimate(run, sums.get(name, NO_RESPONSES), name, replays[name], requests, stage_estimates)
        )
    # The pairs are the instructions config's: none when the build stops before it.
    train, test = run.expected_pairs(observed) if depth >= CONFIGS.index(DEFAULT_CONFIG) else (0.0, 0.0)
    return Estimate(
        stage_estimates,
        train,
        test,
        len(run.disciplines),
        run.limits.confirm_above_requests,
        run.limits.confirm_above_usd,
        str(run.work_dir),
    )


def _token_sums(run: Run, shared: Cache) -> dict[str, TokenSums]:
    """Per stage, the `Cache.token_sums` of the shared cache's and every unit cache's responses together: each
    file opened once, read only, and read in one query."""
    totals: dict[str, TokenSums] = {}

    def add(cache: Cache) -> None:
        for stage, sums in cache.token_sums_by_stage().items():
            total = totals.get(stage, NO_RESPONSES)
            totals[stage] = (total[0] + sums[0], total[1] + sums[1], total[2] + sums[2], total[3] + sums[3])

    add(shared)
    for path in sorted((run.work_dir / UNIT_CACHES).glob("*.sqlite")):
        unit_cache = Cache(path, read_only=True)
        try:
            add(unit_cache)
        finally:
            unit_cache.close()
    return totals


def _stage_estimate(
    run: Run, sums: TokenSums, stage: str, replay: _Replay, requests: float, earlier: list[StageEstimate]
) -> StageEstimate:
    """`sums`: the stage's `Cache.token_sums` over the shared and the unit caches, whose responses give the mean
    tokens; NO_RESPONSES (none cached, or no cache read): the rendered prompts, or template lengths, and max_tokens."""
    plan = run.stages[stage]
    responses = sums[0]
    observed = responses > 0
    skipped = replay.planned - replay.answered
    if observed:  # the mean tokens of the stage's cached responses
        prompt, completion, cached = (total / responses for total in sums[1:])
    elif skipped:  # the prompts rendered
        prompt, cached = (chars / skipped / CHARS_PER_TOKEN for chars in (replay.prompt_chars, replay.cached_chars))
        completion = plan.params.get("max_tokens", DEFAULT_COMPLETION_TOKENS)
    else:
        prompt, cached = _unrendered_tokens(run, stage, earlier)
        completion = plan.params.get("max_tokens", DEFAULT_COMPLETION_TOKENS)
    prompt_tokens, completion_tokens, cached_tokens = requests * prompt, requests * completion, requests * cached
    accounting, model = Accounting(run.prices), plan.route.model
    return StageEstimate(
        stage,
        model,
        requests,
        replay.answered,
        prompt_tokens,
        completion_tokens,
        accounting.cost(model, prompt_tokens, completion_tokens, cached_tokens, batch=plan.batch),
        observed,
        cached_tokens,
        accounting.cost(model, prompt_tokens, completion_tokens, batch=plan.batch),
        accounting.cost(model, prompt_tokens, completion_tokens, cached_tokens, batch=True),
        priced=model in run.prices,
    )


def _unrendered_tokens(run: Run, stage: str, earlier: list[StageEstimate]) -> tuple[float, float]:
    """(prompt, cached) tokens per request of a stage with nothing to render yet (its inputs come from requests not
    made): the template's own length; a stage whose requests share their input's text (it names a prompt_cache_key)
    carries the previous stage's output too, and all but the first request of an input find it cached."""
    template = _template_tokens(run, stage)
    stage_class = STAGES[STAGE_NAMES.index(stage)]
    if stage_class.prompt_cache_key is Stage.prompt_cache_key or not earlier or not earlier[-1].requests:
        return template, 0.0
    carried = earlier[-1].completion_tokens / earlier[-1].requests
    per_input = stage_class.requests_per_input(run.generation)
    common = rule_for(run.stages[stage].route.endpoints[0]).cached_chars(int(carried * CHARS_PER_TOKEN))
    return template + carried, common / CHARS_PER_TOKEN * (per_input - 1) / per_input


def _template_tokens(run: Run, stage: str) -> float:
    """A stage with nothing to render yet (its inputs come from requests not made): the templates' own length."""
    path = prompt_path(run.prompts_dir, stage)
    return len(path.read_text()) / CHARS_PER_TOKEN


def format_estimate(estimate: Estimate) -> str:
    lines = [
        f"{'stage':<10} {'model':<16} {'requests':>9} {'cached':>7} {'to send':>8} {'tokens in':>11} "
        f"{'cached in':>11} {'tokens out':>11} {'cost USD':>9}  tokens from"
    ]
    for e in estimate:
        source = "cached responses" if e.observed else "prompt length, max_tokens (an upper bound)"
        cost = f"{e.cost:>9.4f}" if e.priced else f"{'unpriced':>9}"
        lines.append(
            f"{e.stage:<10} {e.model:<16} {e.requests:>9,.0f} {e.cached:>7,} {e.to_send:>8,.0f} "
            f"{e.prompt_tokens:>11,.0f} {e.cached_tokens:>11,.0f} {e.completion_tokens:>11,.0f} {cost}  {source}"
        )
    responses, cached = sum(e.cached for e in estimate), sum(e.cached_tokens for e in estimate)
    whole_cost = sum(e.cost for e in estimate)  # the cached requests' too: estimate.cost is of those to send
    lines.append(
        f"{'total':<27} {estimate.requests:>9,.0f} {responses:>7,} "
        f"{estimate.to_send:>8,.0f} {estimate.prompt_tokens:>11,.0f} {cached:>11,.0f} "
        f"{estimate.completion_tokens:>11,.0f} {whole_cost:>9.4f}"
    )
    if estimate.train_pairs or estimate.test_pairs:
        lines.append(
            f"pairs: about {estimate.train_pairs:,.0f} train and {estimate.test_pairs:,.0f} test (instructions) "
            f"from {counted(estimate.disciplines, 'discipline')}"
        )
    lines.append(
        f"cached: {responses:,} responses in {estimate.work_dir}"
        f"{'' if responses else ' (none there: every request counts as to send)'}; a build with another --work-dir "
        "sends what that one lacks."
    )
    lines.append(f"to pay: {estimate.cost:,.4f} USD for the {estimate.to_send:,.0f} requests not cached")
    if estimate.unpriced:
        lines[-1] += (
            f", not counting {', '.join(estimate.unpriced)} (unpriced: give --price MODEL=IN,OUT or generation.prices)"
        )
    lines.append(
        f"cost USD: {whole_cost:.4f} with the prompt cache's discount "
        f"({cached / estimate.prompt_tokens if estimate.prompt_tokens else 0:.0%} of input tokens cached), "
        f"{sum(e.cost_uncached for e in estimate):.4f} without it, "
        f"{sum(e.cost_batch for e in estimate):.4f} with every stage through the Batch API (--batch)"
    )
    lines.append(
        "Requests after a stage that is not cached are extrapolated from the settings; "
        "outputs that fail validation add retries on top. Until the syllabi are cached, the questions' prompts "
        "carry a syllabus of max_tokens (an upper bound): `glan build --configs syllabi` first makes them exact."
    )
    return "\n".join(lines)
