"""The plan: one `resolve()` turns what a command asks for (RunSettings) into the whole run, decided once. The
taxonomy is read once, the preset and the command's overrides merged over its generation settings, the
disciplines chosen; whether the embedded model runs (and which), and for each stage its prompt, output model,
model, endpoints, sampling params and Batch API choice; the limits, budget, prices, failure threshold and
executor. Everything after this reads the plan; nothing merges settings or reads the taxonomy again.

Resolving checks what can be checked without a request (presets, discipline names, a model for every stage,
endpoint URLs, prompt files naming the output model their stage parses), so bad input fails before any is sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .config.overrides import OverrideError, overridden
from .config.run import RunSettings
from .config.settings import Generation, Limits, Price, url_problem
from .errors import UserError
from .llm.accounting import FREE, Budget, ModelPrice
from .llm.free_text import FreeText
from .llm.local_models import LOCAL_MODELS, LocalModel
from .llm.routes import OPENAI_URL, Endpoint, Route
from .project import SHIPPED_PROMPTS, prompts_dir
from .prompts import Prompt, PromptError, load_prompt, prompt_path
from .sizing import SIZED_KEYS, sized
from .stages import DEFAULT_CONFIG, OUTPUTS, STAGES, Stage, StageContext
from .taxonomy import DisciplineRef, Taxonomy, TaxonomyError, load_taxonomy, select_disciplines

# The stage whose rows are the pairs trainers load (the instructions config).
DEFAULT_CONFIG_STAGE = next(stage for stage in STAGES if stage.config == DEFAULT_CONFIG)
# The embedded server's address is known once it has started (Run.on_local_server); until then its routes say this.
LOCAL_SERVER_PENDING = "http://127.0.0.1"


@dataclass(frozen=True)
class StagePlan:
    """How one stage runs: its context (settings, model, prompt fingerprint), its prompt and output model, and
    where its requests go."""

    stage: type[Stage]
    context: StageContext
    prompt: Prompt
    output_model: type[BaseModel] | FreeText  # as its requests ask for it, bounded by the run's settings
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
    settings: RunSettings  # as asked for, with what the plan decided for the embedded model (its model and preset)
    taxonomy: Taxonomy
    generation: Generation  # the preset over the taxonomy's, with the command's seed, limits and executor
    disciplines: tuple[DisciplineRef, ...]
    stages: dict[str, StagePlan]  # by stage name, in build order: the stages the run runs (the judge when on)
    prompts_dir: Path
    embedded: LocalModel | None = None  # the embedded model the run's requests go to, when no endpoint is configured
    prices: dict[str, ModelPrice] = field(default_factory=dict)  # model -> USD per M tokens
    budget: Budget = Budget()

    @property
    def work_dir(self) -> Path:
        return Path(self.settings.work_dir)

    @property
    def limits(self) -> Limits:
        return self.generation.limits

    @property
    def executor(self) -> str:
        """ "local" or "ray"."""
        return self.generation.executor

    @property
    def prompts_shipped(self) -> bool:
        """The run uses the prompts shipped with glan (there is no prompts/ beside its taxonomy)."""
        return self.prompts_dir == SHIPPED_PROMPTS

    def chain(self, depth: int = len(STAGES)) -> tuple[type[Stage], ...]:
        """The stages of the registry's first `depth` that this run runs, in order."""
        return tuple(stage for stage in STAGES[:depth] if stage.name in self.stages)

    def expected_requests(
        self, depth: int = len(STAGES), observed: Mapping[str, tuple[int, int]] | None = None, whole: bool = False
    ) -> dict[str, float]:
        """Requests per stage of the first `depth`, in chain order. A stage's inputs are the rows of the stage before
        (the disciplines, for the first), and it makes `requests_per_input` requests for each; an answered request
        yields `rows_per_request` rows by the settings, or, for a stage `observed` (stage -> (requests answered,
        rows they gave)), as many as it gave where the cache answered it. `whole`: rows are whole at every step."""
        return {stage: requests for stage, (requests, _) in self._expected(depth, observed, whole).items()}

    def expected_pairs(self, observed: Mapping[str, tuple[int, int]] | None = None) -> tuple[float, float]:
        """The train and test pairs of the instructions config a whole build yields, by the settings and `observed`
        (as `expected_requests` takes it): every discipline holds out up to `quality.test_split.per_discipline`.
        What dedup and failures drop comes off only once the cache shows it."""
        pairs = self._expected(len(STAGES), observed, whole=False)[DEFAULT_CONFIG_STAGE.name][1]
        per_discipline = pairs / len(self.disciplines) if self.disciplines else 0.0
        test = len(self.disciplines) * min(float(self.generation.quality.test_split.per_discipline), per_discipline)
        return pairs - test, test

    def _expected(
        self, depth: int, observed: Mapping[str, tuple[int, int]] | None, whole: bool
    ) -> dict[str, tuple[float, float]]:
        """Per stage of the first `depth`: (requests, rows out)."""
        observed = observed or {}
        inputs: float = len(self.disciplines)
        counts = {}
        for stage in self.chain(depth):
            requests = inputs * stage.requests_per_input(self.generation)
            answered, rows = observed.get(stage.name, (0, 0))
            rate = rows / answered if answered else stage.rows_per_request(self.generation)
            inputs = rows + (requests - answered) * rate
            if whole:
                inputs = int(inputs)
            counts[stage.name] = (requests, inputs)
        return counts

    def on_local_server(self, base_url: str) -> Run:
        """The embedded run, its requests going to the embedded server that has started at `base_url`."""
        return replace(
            self,
            stages={
                name: replace(
                    plan,
                    route=Route(
                        plan.route.model,
                        tuple(replace(endpoint, base_url=base_url) for endpoint in plan.route.endpoints),
                    ),
                )
                for name, plan in self.stages.items()
            },
        )


def resolve(settings: RunSettings, taxonomy: Taxonomy | None = None) -> Run:
    # Made absolute here, in the process that was given it: a Ray worker reads the run in another directory.
    settings = replace(settings, work_dir=str(Path(settings.work_dir).absolute()))
    taxonomy = taxonomy or load_taxonomy(settings.taxonomy)
    generation = overridden(taxonomy.settings(settings.preset), dict(settings.overrides))
    embedded = _embedded_model(settings, generation)
    if embedded is not None:  # the demo preset (if the taxonomy has one), so that a CPU build takes minutes
        preset = settings.preset or ("demo" if "demo" in taxonomy.presets else None)
        if preset != settings.preset:
            generation = overridden(taxonomy.settings(preset), dict(settings.overrides))
        settings = replace(settings, model=settings.model or embedded.alias, preset=preset)
    limits = generation.limits.model_copy(
        update={
            key: value
            for key, value in (("concurrency", settings.concurrency), ("max_failure_rate", settings.max_failure_rate))
            if value is not None
        }
    )
    generation = generation.model_copy(
        update={
            "limits": limits,
            "executor": settings.executor or generation.executor,
            **({"seed": settings.seed} if settings.seed is not None else {}),
        }
    )
    disciplines = _selected_disciplines(settings, taxonomy, generation)
    if settings.pairs is not None:
        if sized_too := [key for key, _ in settings.overrides if key in SIZED_KEYS]:
            raise OverrideError(
                None, None, f"--set {sized_too[0]}", "--pairs chooses this setting; give one or the other, not both"
            )
        generation, disciplines = sized(generation, disciplines, settings.pairs)
    prompts = prompts_dir(settings.taxonomy, settings.prompts)
    base_url = settings.base_url or (LOCAL_SERVER_PENDING if embedded else None)
    return Run(
        settings=settings,
        taxonomy=taxonomy,
        generation=generation,
        disciplines=tuple(disciplines),
        stages={
            stage.name: _stage_plan(settings, generation, stage, prompts, base_url, embedded is not None)
            for stage in STAGES
            if stage.runs(generation)
        },
        prompts_dir=prompts,
        embedded=embedded,
        prices={
            **({settings.model or embedded.alias: FREE} if embedded else {}),  # it runs on this machine
            **{
                model: ModelPrice(price.input_per_million, price.output_per_million, price.cached_input)
                for model, price in generation.prices.items()
            },
            **{model: _given_price(model, *figures) for model, *figures in settings.prices},
        },
        budget=Budget(settings.max_cost, settings.max_requests),
    )


def _given_price(model: str, input_price: float, output_price: float, *cached: float) -> ModelPrice:
    """A price given by --price or glan.build's prices, (input, output[, cached input]) USD per million tokens,
    checked and read as taxonomy.yaml's are: finite, at least 0, cached input priced as input unless named."""
    try:
        price = Price(
            input_per_million=input_price,
            output_per_million=output_price,
            cached_input_per_million=cached[0] if cached else None,
        )
    except ValidationError as error:
        raise UserError(f"--price {model}: {error.errors()[0]['msg']} (USD per million tokens).") from None
    return ModelPrice(price.input_per_million, price.output_per_million, price.cached_input)


def _embedded_model(settings: RunSettings, generation: Generation) -> LocalModel | None:
    """The embedded model, when the run may have one and no endpoint is named by flag, environment or the
    generation settings (the taxonomy's, with the preset and --set applied: ENDPOINT_PRECEDENCE)."""
    if (
        settings.local_model is None
        or settings.base_url
        or os.environ.get("OPENAI_BASE_URL")
        or os.environ.get("OPENAI_API_KEY")
    ):
        return None
    if any(getattr(generation, stage.name).base_urls for stage in STAGES if stage.runs(generation)):
        return None
    return LOCAL_MODELS[settings.local_model]


def _selected_disciplines(settings: RunSettings, taxonomy: Taxonomy, generation: Generation) -> list[DisciplineRef]:
    if not settings.disciplines:  # a preset may name its own (generation.discipline_ids)
        return taxonomy.disciplines(generation)
    return select_disciplines(taxonomy, settings.disciplines, settings.taxonomy)


def _endpoint_urls(base_url: str | None, stage_urls: list[str]) -> list[str]:
    """The stage's endpoints, by ENDPOINT_PRECEDENCE."""
    if base_url:
        return [base_url]
    return list(stage_urls) or [os.environ.get("OPENAI_BASE_URL") or OPENAI_URL]


def _stage_plan(
    settings: RunSettings,
    generation: Generation,
    stage: type[Stage],
    prompts: Path,
    base_url: str | None,
    embedded: bool,
) -> StagePlan:
    stage_settings = getattr(generation, stage.name)
    prompt = load_prompt(prompts, stage.name, embedded)
    output, json_form = stage.output.name, stage.output.json_form
    if prompt.output_model not in (output, json_form):
        accepted = f"{output} (free text), or {json_form} (JSON, as glan 0.1 asked)" if json_form else output
        raise PromptError(
            str(prompt_path(prompts, stage.name)),
            None,
            "output_model",
            f"{prompt.output_model} is not what the {stage.name} stage reads. Write output_model: {accepted}.",
        )
    model = settings.model or stage_settings.model
    if not model:
        raise TaxonomyError(
            settings.taxonomy,
            None,
            f"generation.{stage.name}.model",
            f"no model for the {stage.name} stage. "
            "Pass --model, or set it in the taxonomy's generation block or preset.",
        )
    urls = _endpoint_urls(base_url, stage_settings.base_urls)
    for url, source in ((settings.base_url, "--base-url"), (os.environ.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL")):
        if url in urls and (problem := url_problem(url)):
            raise TaxonomyError(None, None, source, f'"{url}" is not an endpoint URL: {problem}.')
    key_env = stage_settings.api_key_env or "OPENAI_API_KEY"
    route = Route(model, tuple(Endpoint(url, key_env, stage_settings.structured_output) for url in urls))
    params = dict(prompt.params)
    for name in ("temperature", "top_p", "max_tokens"):
        if getattr(stage_settings, name) is not None:
            params[name] = getattr(stage_settings, name)
    return StagePlan(
        stage,
        StageContext(generation, model, prompt.fingerprint),
        prompt,
        OUTPUTS[prompt.output_model].model(generation),
        route,
        params,
        settings.batch or stage_settings.batch,
        stage_settings.batch_fallback,
    )
