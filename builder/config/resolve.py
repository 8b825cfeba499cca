"""One resolved run: the taxonomy read once, the preset and flags merged over it, and for each stage its
prompt, output model, model, endpoints, sampling params and Batch API choice decided. Everything after
this reads the resolved run; nothing merges settings by hand again.

Resolving checks what can be checked without a request (presets, discipline names, a model for every
stage, prompt files naming the output model their stage parses), so bad input fails before any is sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import schemas
from ..llm.accounting import Budget
from ..llm.engine import Endpoint, Limits, Route
from ..prompts import PromptError, load_prompt
from ..stages import STAGES, Stage, StageContext
from ..taxonomy import DisciplineRef, Taxonomy, TaxonomyError, load_taxonomy
from .run import RunSettings
from .settings import Generation, url_problem

OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class StagePlan:
    """How one stage runs: its context (settings, prompt, model, output model) and where its requests go."""

    stage: type[Stage]
    context: StageContext
    route: Route
    params: dict  # sampling params sent with every request: the prompt file's, then the taxonomy's
    batch: bool
    batch_fallback: str

    @property
    def name(self) -> str:
        return self.stage.name

    def make(self) -> Stage:
        return self.stage(self.context)


@dataclass(frozen=True)
class Run:
    settings: RunSettings
    taxonomy: Taxonomy
    generation: Generation
    disciplines: tuple[DisciplineRef, ...]
    stages: dict[str, StagePlan]  # by stage name, in build order
    limits: Limits
    executor: str  # "local" or "ray"
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)  # model -> USD per M tokens in, out
    budget: Budget = Budget()

    @property
    def work_dir(self) -> Path:
        return Path(self.settings.work_dir)


def resolve(settings: RunSettings, taxonomy: Taxonomy | None = None) -> Run:
    # Made absolute here, in the process that was given it: a Ray worker reads the run in another directory.
    settings = replace(settings, work_dir=str(Path(settings.work_dir).absolute()))
    taxonomy = taxonomy or load_taxonomy(settings.taxonomy)
    generation = taxonomy.settings(settings.preset)
    if settings.seed is not None:
        generation = generation.model_copy(update={"seed": settings.seed})
    limits = generation.limits
    return Run(
        settings=settings,
        taxonomy=taxonomy,
        generation=generation,
        disciplines=tuple(_selected_disciplines(settings, taxonomy, generation)),
        stages={stage.name: _stage_plan(settings, generation, stage) for stage in STAGES},
        limits=Limits(concurrency=settings.concurrency or limits.concurrency,
                      requests_per_minute=limits.requests_per_minute, tokens_per_minute=limits.tokens_per_minute,
                      timeout_s=limits.timeout_s, max_retries=limits.max_retries, max_attempts=limits.max_attempts,
                      dead_after_s=limits.dead_after_s),
        executor=settings.executor or generation.executor,
        prices={**{model: (price.input_per_million, price.output_per_million)
                   for model, price in generation.prices.items()},
                **{model: (input_price, output_price) for model, input_price, output_price in settings.prices}},
        budget=Budget(settings.max_cost, settings.max_requests),
    )


def _selected_disciplines(settings: RunSettings, taxonomy: Taxonomy, generation: Generation) -> list[DisciplineRef]:
    if not settings.disciplines:  # a preset may name its own (generation.discipline_ids)
        return taxonomy.disciplines(generation)
    every = taxonomy.disciplines()
    wanted = {name.casefold() for name in settings.disciplines}
    chosen = [ref for ref in every if ref.discipline.casefold() in wanted or ref.discipline_id in wanted]
    known = {ref.discipline.casefold() for ref in chosen} | {ref.discipline_id for ref in chosen}
    missing = sorted(wanted - known)
    if missing:
        raise TaxonomyError(
            settings.taxonomy, None, "--disciplines", f"no discipline named {', '.join(missing)}. "
            "Use a discipline's name or id as written in the taxonomy (see `glan taxonomy validate`).")
    return chosen


def _stage_plan(settings: RunSettings, generation: Generation, stage: type[Stage]) -> StagePlan:
    stage_settings = getattr(generation, stage.name)
    prompt = load_prompt(settings.prompts_dir, stage.name, settings.embedded)
    json_form = schemas.JSON_FORMS.get(stage.output_model)
    if prompt.output_model not in (stage.output_model, json_form):
        accepted = f"{stage.output_model} (free text), or {json_form} (JSON, as glan 0.1 asked)" if json_form \
            else stage.output_model
        raise PromptError(str(settings.prompts_dir / f"{stage.name}.yaml"), None, "output_model",
                          f"{prompt.output_model} is not what the {stage.name} stage reads. Write output_model: "
                          f"{accepted}.")
    model = settings.model or stage_settings.model
    if not model:
        raise TaxonomyError(
            settings.taxonomy, None, f"generation.{stage.name}.model", f"no model for the {stage.name} stage. "
            "Pass --model, or set it in the taxonomy's generation block or preset.")
    urls = ([settings.base_url] if settings.base_url else list(stage_settings.base_urls)) or \
        [os.environ.get("OPENAI_BASE_URL") or OPENAI_URL]
    for url, source in ((settings.base_url, "--base-url"), (os.environ.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL")):
        if url in urls and (problem := url_problem(url)):
            raise TaxonomyError(None, None, source, f'"{url}" is not an endpoint URL: {problem}.')
    key_env = stage_settings.api_key_env or "OPENAI_API_KEY"
    route = Route(model, tuple(Endpoint(url, key_env, stage_settings.structured_output) for url in urls))
    params = dict(prompt.params)
    for name in ("temperature", "top_p", "max_tokens"):
        if getattr(stage_settings, name) is not None:
            params[name] = getattr(stage_settings, name)
    output_model = schemas.OUTPUT_MODELS[prompt.output_model](generation)
    return StagePlan(stage, StageContext(generation, prompt, model, output_model), route, params,
                     settings.batch or stage_settings.batch, stage_settings.batch_fallback)
