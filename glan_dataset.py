"""GLAN as a `datasets` builder: one config per stage, read from the discipline units' parquet files the way
datasets' packaged parquet builder reads files. Missing units are run first (LLM requests, cached).

datasets >= 4 refuses loading scripts, so use it by import:

    from glan_dataset import Glan
    builder = Glan(config_name="questions", taxonomy="taxonomy.yaml", preset="demo", model="gpt-4o-mini")
    builder.download_and_prepare()
    questions = builder.as_dataset("train")
"""

from __future__ import annotations

import hashlib
from dataclasses import field, fields, make_dataclass

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from glan.api import check_size, run_settings, worded_for_the_caller
from glan.build import ensure_units
from glan.config.run import RunSettings
from glan.execute.serve import serving
from glan.plan import resolve
from glan.preflight import check_benchmarks
from glan.publish.card import CITATION
from glan.stages import CONFIGS, DEFAULT_CONFIG, FEATURES, depth_of
from glan.unit.store import UnitStore
from glan.workdir import exclusive


def _run_settings(config) -> RunSettings:
    return RunSettings(**{setting.name: getattr(config, setting.name) for setting in fields(RunSettings)})


# BuilderConfig for GLAN: the stage is the config name; the other fields are RunSettings' own (how to
# run the units), taken from it so that a new run setting needs no second declaration here.
GlanConfig = make_dataclass(
    "GlanConfig",
    [(setting.name, setting.type, field(default=setting.default)) for setting in fields(RunSettings)],
    bases=(datasets.BuilderConfig,),
    namespace={"run_settings": _run_settings, "__module__": __name__},
)


class Glan(datasets.ArrowBasedBuilder):
    """GLAN as a `datasets` builder: `config_name` is one config (taxonomy, subjects, syllabi, questions or
    instructions, the default); every other keyword is a setting of a run (glan.config.run.RunSettings: taxonomy,
    preset, disciplines as a tuple of names or ids, model, base_url, work_dir, pairs, overrides, ...).
    `download_and_prepare()` runs the discipline units that are missing (LLM requests, cached in `work_dir`) and
    reads their parquet files; `as_dataset(split)` returns them. It works inside a running event loop (a Jupyter
    cell): the units then run on a loop of their own in a worker thread. With no endpoint configured, requests go
    to OpenAI's, unless `local_model` names an embedded model. A run estimated above generation.limits'
    confirm_above_requests or confirm_above_usd raises glan.ConfirmationNeeded before any request: size it with
    `pairs=` or a preset, or raise the limits (`overrides=`). For a dataset folder to publish, use `glan.build()`.

        builder = Glan(config_name="instructions", taxonomy="taxonomy.yaml", preset="smoke", model="gpt-4o-mini")
        builder.download_and_prepare()
        pairs = builder.as_dataset("train")
    """

    BUILDER_CONFIG_CLASS = GlanConfig
    BUILDER_CONFIGS = [GlanConfig(name=name) for name in CONFIGS]
    DEFAULT_CONFIG_NAME = DEFAULT_CONFIG

    def __init__(self, *args, **kwargs):
        given = {setting.name: kwargs[setting.name] for setting in fields(RunSettings) if setting.name in kwargs}
        # As glan.build reads its keywords (a string is one discipline, prices and overrides as mappings), but with
        # this builder's own defaults: no embedded model unless named, and a progress bar.
        settings = worded_for_the_caller(
            lambda: run_settings(
                **{**given, "local_model": given.get("local_model"), "progress": given.get("progress", True)}
            )
        )
        config = GlanConfig(
            name=kwargs.get("config_name") or self.DEFAULT_CONFIG_NAME,
            **{setting.name: getattr(settings, setting.name) for setting in fields(RunSettings)},
        )
        run = worded_for_the_caller(lambda: resolve(config.run_settings()))
        self._units = UnitStore(run, worded_for_the_caller(lambda: check_benchmarks(run)))
        # The config version is the taxonomy's; the datasets cache is keyed by the units' fingerprints (what
        # decides their rows), so an edited taxonomy, prompt or setting is never served from a stale Arrow cache.
        fingerprints = "".join(self._units.fingerprint(ref) for ref in run.disciplines)
        kwargs.setdefault("hash", hashlib.sha256(fingerprints.encode()).hexdigest()[:16])
        super().__init__(*args, version=run.taxonomy.version, **kwargs)

    def _info(self):
        return datasets.DatasetInfo(
            description="GLAN synthetic instruction data generated from a taxonomy of human knowledge.",
            features=FEATURES[self.config.name],
            citation=CITATION,
            homepage="https://arxiv.org/abs/2402.13064",
        )

    def _split_generators(self, dl_manager):
        config = self.config.name
        run = self._units.run
        # A build above generation.limits.confirm_above_* needs a word it cannot ask for here: pairs= or the limits.
        worded_for_the_caller(lambda: check_size(run, [config], agree="", benchmarks=self._units.benchmarks))
        with exclusive(run.work_dir), serving(run) as served:
            units = ensure_units(served, self._units, depth_of([config]), progress=run.settings.progress)
        files: dict[str, list[str]] = {}
        for unit in sorted(units.files, key=lambda unit: unit.discipline_id):  # as load_dataset reads the folder
            for split in unit.files.get(config, {}):
                files.setdefault(split, []).append(str(unit.path(config, split)))
        return [datasets.SplitGenerator(name=split, gen_kwargs={"files": paths}) for split, paths in files.items()]

    def _generate_tables(self, files):
        for file_index, path in enumerate(files):
            for batch_index, record_batch in enumerate(pq.ParquetFile(path).iter_batches()):
                yield datasets.builder.Key(file_index, batch_index), pa.Table.from_batches([record_batch])
