"""What a build is asked to do: the command line's flags (or glan_dataset's config fields), before resolving."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..project import prompts_dir


@dataclass(frozen=True)
class RunSettings:
    taxonomy: str = "taxonomy.yaml"
    prompts: str | None = None  # default: prompts/ beside the taxonomy file, else the prompts shipped with glan
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
    executor: str | None = None  # "ray": the units run on a Ray cluster; None: the taxonomy's generation.executor
    ray_address: str | None = None  # "auto", "HOST:PORT", or None: as ray.init() finds or starts a cluster
    prices: tuple[tuple[str, float, float], ...] = ()  # --price: (model, USD/M in, USD/M out), over the taxonomy
    progress: bool = True
    # The embedded model's run: prompts carry their `local_examples`, free text is asked for as JSON (prompts.py)
    embedded: bool = False

    @property
    def prompts_dir(self) -> Path:
        return prompts_dir(self.taxonomy, self.prompts)
