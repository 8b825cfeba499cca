"""GLAN as a `datasets` builder: one config per stage, rows made by builder.pipeline.

datasets >= 4 refuses loading scripts, so use it by import:

    from glan_dataset import Glan
    builder = Glan(config_name="questions", taxonomy="taxonomy.yaml", preset="demo", model="gpt-4o-mini")
    builder.download_and_prepare()
    questions = builder.as_dataset("train")
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import datasets

from builder.pipeline import Pipeline, RunSettings, inputs_fingerprint
from builder.schemas import CONFIGS, FEATURES
from builder.taxonomy import load_taxonomy

_CITATION = """@article{li2024glan,
  title={Synthetic Data (Almost) from Scratch: Generalized Instruction Tuning for Language Models},
  author={Li, Haoran and Dong, Qingxiu and Tang, Zhengyang and Wang, Chaojun and Zhang, Xingxing and Huang, Haoyang and Huang, Shaohan and Huang, Xiaolong and Huang, Zeqiang and Zhang, Dongdong and Gu, Yuxian and Cheng, Xin and Wang, Xun and Chen, Si-Qing and Dong, Li and Lu, Wei and Sui, Zhifang and Wang, Benyou and Lam, Wai and Wei, Furu},
  journal={arXiv preprint arXiv:2402.13064},
  year={2024}
}"""


@dataclass
class GlanConfig(datasets.BuilderConfig):
    """BuilderConfig for GLAN: the stage is the config name; the rest says how to run the pipeline."""

    taxonomy: str = "taxonomy.yaml"
    prompts: str | None = None
    work_dir: str = ".glan"
    preset: str | None = None
    disciplines: tuple[str, ...] = ()
    model: str | None = None
    base_url: str | None = None
    concurrency: int | None = None
    seed: int | None = None
    max_cost: float | None = None
    max_requests: int | None = None
    batch: bool = False
    prices: tuple[tuple[str, float, float], ...] = ()
    progress: bool = True

    def run_settings(self) -> RunSettings:
        return RunSettings(**{field.name: getattr(self, field.name) for field in fields(RunSettings)})


class Glan(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = GlanConfig
    BUILDER_CONFIGS = [GlanConfig(name=name) for name in CONFIGS]
    DEFAULT_CONFIG_NAME = "instructions"

    def __init__(self, *args, taxonomy: str = "taxonomy.yaml", prompts: str | None = None, **kwargs):
        # The config version is the taxonomy's, and the datasets cache is keyed by the content of every
        # input, so an edited taxonomy or prompt is never served from a stale Arrow cache.
        kwargs.setdefault("hash", inputs_fingerprint(RunSettings(taxonomy=taxonomy, prompts=prompts)))
        super().__init__(*args, taxonomy=taxonomy, prompts=prompts, version=load_taxonomy(taxonomy).version, **kwargs)

    def _info(self):
        return datasets.DatasetInfo(
            description="GLAN synthetic instruction data generated from a taxonomy of human knowledge.",
            features=FEATURES[self.config.name],
            citation=_CITATION,
            homepage="https://arxiv.org/abs/2402.13064",
        )

    def _split_generators(self, dl_manager):
        splits = Pipeline.shared(self.config.run_settings()).rows(self.config.name)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"rows": rows}) for split, rows in splits.items()]

    def _generate_examples(self, rows):
        yield from enumerate(rows)
