"""GLAN as a `datasets` builder: one config per stage, rows made by builder.pipeline.

datasets >= 4 refuses loading scripts, so use it by import:

    from glan_dataset import Glan
    builder = Glan(config_name="questions", taxonomy="taxonomy.yaml", preset="demo", model="gpt-4o-mini")
    builder.download_and_prepare()
    questions = builder.as_dataset("train")
"""

from __future__ import annotations

from dataclasses import field, fields, make_dataclass

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


def _run_settings(config) -> RunSettings:
    return RunSettings(**{field.name: getattr(config, field.name) for field in fields(RunSettings)})


# BuilderConfig for GLAN: the stage is the config name; the other fields are RunSettings' own (how to
# run the pipeline), taken from it so that a new run setting needs no second declaration here.
GlanConfig = make_dataclass(
    "GlanConfig",
    [(setting.name, setting.type, field(default=setting.default)) for setting in fields(RunSettings)],
    bases=(datasets.BuilderConfig,),
    namespace={"run_settings": _run_settings, "__module__": __name__},
)


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
