"""Runs the stages in order and hands each dataset config its rows (split -> rows).

Stages are pure functions of (taxonomy, prompts, settings, cache): every row is recomputed from the
cache on every run, and only requests missing from it are sent.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from . import schemas
from .quality import QualityReport, apply_answer_filters, apply_quality, held_out_ids
from .llm.accounting import Accounting, Budget
from .llm.batch import BatchRunner
from .llm.cache import Cache
from .llm.engine import Endpoint, Engine, LLMRequest, Limits, Route
from .prompts import load_prompts
from .stages import Stage, StageContext
from .stages.instructions import Instructions
from .stages.questions import Questions
from .stages.subjects import Subjects
from .stages.syllabi import Syllabi
from .taxonomy import TaxonomyError, load_taxonomy

OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class RunSettings:
    """What a build is asked to do. Hashable: it keys the shared pipeline and the datasets cache."""

    taxonomy: str = "taxonomy.yaml"
    prompts: str | None = None  # default: prompts/ beside the taxonomy file
    work_dir: str = ".glan"
    preset: str | None = None
    disciplines: tuple[str, ...] = ()
    model: str | None = None
    base_url: str | None = None
    concurrency: int | None = None
    seed: int | None = None
    max_cost: float | None = None
    max_requests: int | None = None
    batch: bool = False  # every stage through the OpenAI Batch API (a stage's `batch: true` does it for one)
    prices: tuple[tuple[str, float, float], ...] = ()  # --price: (model, USD/M in, USD/M out), over the taxonomy
    progress: bool = True

    @property
    def prompts_dir(self) -> Path:
        return Path(self.prompts) if self.prompts else Path(self.taxonomy).parent / "prompts"


def inputs_fingerprint(run: RunSettings) -> str:
    """sha256 over the taxonomy file and every prompt file: what the rows are made from, besides the cache."""
    digest = hashlib.sha256(Path(run.taxonomy).read_bytes())
    for prompt in sorted(run.prompts_dir.glob("*.yaml")):
        digest.update(prompt.read_bytes())
    return digest.hexdigest()[:16]


class Pipeline:
    _shared: dict[tuple[RunSettings, str], "Pipeline"] = {}

    @classmethod
    def shared(cls, run: RunSettings) -> "Pipeline":
        """One pipeline per settings and inputs, so the five configs of a build share its stage results."""
        key = (run, inputs_fingerprint(run))
        if key not in cls._shared:
            cls._shared[key] = cls(run)
        return cls._shared[key]

    @classmethod
    def forget(cls, run: RunSettings) -> None:
        """Drop the shared pipelines of `run`: the next build recomputes its rows from the cache."""
        for key in [key for key in cls._shared if key[0] == run]:
            cls._shared.pop(key).cache.close()

    def __init__(self, run: RunSettings):
        self.run = run
        self.taxonomy = load_taxonomy(run.taxonomy)
        settings = self.taxonomy.settings(run.preset)
        if run.seed is not None:
            settings = settings.model_copy(update={"seed": run.seed})
        self.settings = settings
        self.prompts = load_prompts(run.prompts_dir)
        self.disciplines = self._selected_disciplines()
        limits = settings.limits
        self.cache = Cache(Path(run.work_dir) / "cache.sqlite")
        self.accounting = Accounting(
            {**{model: (price.input_per_million, price.output_per_million) for model, price in settings.prices.items()},
             **{model: (input_price, output_price) for model, input_price, output_price in run.prices}},
            Budget(run.max_cost, run.max_requests))
        self.engine = Engine(self.cache, Limits(
            concurrency=run.concurrency or limits.concurrency, requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute, timeout_s=limits.timeout_s,
            max_retries=limits.max_retries, max_attempts=limits.max_attempts), self.accounting, run.progress)
        self.batches = BatchRunner(self.engine, limits.batch_poll_s)
        self.stages = {
            "subjects": Subjects(self._context("subjects")),
            "syllabi": Syllabi(self._context("syllabus")),
            "questions": Questions(self._context("questions")),
            "instructions": Instructions(self._context("answers")),
        }
        self._rows: dict[str, dict[str, list[dict]]] = {}
        self.quality = QualityReport()

    def _selected_disciplines(self) -> list[dict]:
        if not self.run.disciplines:  # a preset may name its own (generation.discipline_ids)
            return [vars(ref) for ref in self.taxonomy.disciplines(self.settings)]
        every = [vars(ref) for ref in self.taxonomy.disciplines()]
        wanted = {name.casefold() for name in self.run.disciplines}
        chosen = [d for d in every if d["discipline"].casefold() in wanted or d["discipline_id"] in wanted]
        known = {d["discipline"].casefold() for d in chosen} | {d["discipline_id"] for d in chosen}
        missing = sorted(wanted - known)
        if missing:
            raise TaxonomyError(
                self.run.taxonomy, None, "--disciplines", f"no discipline named {', '.join(missing)}. "
                "Use a discipline's name or id as written in the taxonomy (see `glan taxonomy validate`).")
        return chosen

    def _context(self, stage: str) -> StageContext:
        prompt = self.prompts[stage]
        output_model = schemas.OUTPUT_MODELS[prompt.output_model](self.settings)
        return StageContext(self.settings, prompt, self.route(stage).model, output_model)

    def route(self, stage: str) -> Route:
        stage_settings = getattr(self.settings, stage)
        model = self.run.model or stage_settings.model
        if not model:
            raise TaxonomyError(
                self.run.taxonomy, None, f"generation.{stage}.model", f"no model for the {stage} stage. "
                "Pass --model, or set it in the taxonomy's generation block or preset.")
        urls = ([self.run.base_url] if self.run.base_url else list(stage_settings.base_urls)) or \
            [os.environ.get("OPENAI_BASE_URL") or OPENAI_URL]
        key_env = stage_settings.api_key_env or "OPENAI_API_KEY"
        return Route(model, tuple(Endpoint(url, key_env, stage_settings.structured_output) for url in urls))

    def params(self, stage: str) -> dict:
        stage_settings = getattr(self.settings, stage)
        params = dict(self.prompts[stage].params)
        for name in ("temperature", "top_p", "max_tokens"):
            if getattr(stage_settings, name) is not None:
                params[name] = getattr(stage_settings, name)
        return params

    def rows(self, config: str) -> dict[str, list[dict]]:
        if config not in self._rows:
            self._rows[config] = self._build(config)
        return self._rows[config]

    def _build(self, config: str) -> dict[str, list[dict]]:
        if config == "taxonomy":
            return {"train": [{key: d[key] for key in schemas.FEATURES["taxonomy"]} for d in self.disciplines]}
        parent = schemas.CONFIGS[schemas.CONFIGS.index(config) - 1]
        parents = self.rows(parent)["train"] if parent != "taxonomy" else self.disciplines
        rows, failed = self.run_stage(self.stages[config], parents)
        if config == "questions":  # dedup and decontaminate before answering: a dropped question costs no answer
            kept, self.quality = apply_quality(rows, self.settings.quality)
            return {"train": kept}
        if config == "instructions":
            return self._instruction_splits(rows, failed)
        return {"train": rows}

    def _instruction_splits(self, rows: list[dict], failed: list[tuple[dict, str]]) -> dict[str, list[dict]]:
        """Answer filters, then the held-out GLAN-Test split (never also in train)."""
        for reason in ("truncated", "empty"):  # answers the engine gave up on
            self.quality.record(reason, [item for item, failure in failed if failure == reason])
        rows = apply_answer_filters(rows, self.settings.quality, self.quality,
                                    answer_of=lambda row: row["messages"][1]["content"])
        test_ids = held_out_ids(rows, per_discipline=self.settings.quality.test_split.per_discipline)
        return {"train": [row for row in rows if row["question_id"] not in test_ids],
                "test": [row for row in rows if row["question_id"] in test_ids]}

    def run_stage(self, stage: Stage, parents: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]:
        """The stage's rows, and the items that got no valid output with the last failure reason."""
        items = stage.inputs(parents)
        params = self.params(stage.name)
        requests = [
            LLMRequest(stage.item_id(item), stage.ctx.prompt.render(**stage.context(item)), params,
                       stage.ctx.output_model, sample_index)
            for item in items for sample_index in stage.samples(item)
        ]
        route, stage_settings = self.route(stage.name), getattr(self.settings, stage.name)
        if self.run.batch or stage_settings.batch:  # fills the cache, which the engine's run then replays
            self.batches.fill(stage.name, route, requests, stage_settings.batch_fallback)
        results = iter(self.engine.run(stage.name, route, requests))
        rows, failed = [], []
        for item in items:
            item_results = [next(results) for _ in stage.samples(item)]
            values = [result.value for result in item_results if result.ok]
            if values:
                rows.extend(stage.parse(item, values))
            elif item_results[-1].failure:
                failed.append((item, item_results[-1].failure))
        return rows, failed
