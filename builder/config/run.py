"""What a command asks for: its flags (or glan_dataset's config fields), as given, before the plan decides the run
(builder/plan.py). The defaults here are the command line's too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TAXONOMY = "taxonomy.yaml"
DEFAULT_WORK_DIR = ".glan"
# Where each stage's requests go, the first that applies: --base-url; else the stage's base_urls in the taxonomy;
# else OPENAI_BASE_URL; else OpenAI's API. With none of these for any stage and no OPENAI_API_KEY, the embedded
# model runs instead (glan build, estimate and taxonomy propose; glan_dataset when given a local_model).
ENDPOINT_PRECEDENCE = (
    "--base-url, else the stage's base_urls in the taxonomy, else OPENAI_BASE_URL, else OpenAI "
    "(with OPENAI_API_KEY), else the embedded local model"
)


@dataclass(frozen=True)
class RunSettings:
    taxonomy: str = DEFAULT_TAXONOMY
    prompts: str | None = None  # default: prompts/ beside the taxonomy file, else the prompts shipped with glan
    work_dir: str = DEFAULT_WORK_DIR
    preset: str | None = None
    disciplines: tuple[str, ...] = ()
    model: str | None = None
    base_url: str | None = None
    concurrency: int | None = None
    seed: int | None = None
    max_cost: float | None = None
    max_requests: int | None = None
    max_failure_rate: float | None = None  # None: the taxonomy's limits.max_failure_rate
    batch: bool = False  # every stage through the OpenAI Batch API (a stage's `batch: true` does it for one)
    executor: str | None = None  # "ray": the units run on a Ray cluster; None: the taxonomy's generation.executor
    ray_address: str | None = None  # "auto", "HOST:PORT", or None: as ray.init() finds or starts a cluster
    # --price: (model, USD/M in, USD/M out, USD/M cached in), over the taxonomy
    prices: tuple[tuple, ...] = ()  # (model, input, output[, cached input]) USD per million tokens
    progress: bool = True
    # The embedded model (a name of llm/local_models.py) run when no endpoint is configured; None: no embedded
    # default, a run with no endpoint goes to OpenAI's.
    local_model: str | None = None
    # --set KEY=VALUE: generation settings over the preset's, each a dotted key and its value as YAML reads it.
    overrides: tuple[tuple[str, Any], ...] = ()
    # --pairs N: about N train pairs; the plan chooses subjects, questions per subject and disciplines (sizing.py).
    pairs: int | None = None
