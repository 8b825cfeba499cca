"""The stage registry: the four LLM stages in order. A stage is declared once, in its own module (builder/stages/
base.py says what a declaration holds); config names, prompt files, output models, columns and the chain a unit
runs derive from this registry, never repeated. The names users' files carry stay as they are: a stage's `name` is
its prompt file (prompts/<name>.yaml) and its settings key (generation.<name>), its `config` the dataset config."""

from ..schemas import TAXONOMY_FEATURES, TaxonomyProposal
from .answers import Answers
from .base import Output, Stage, StageContext
from .questions import Questions
from .subjects import Subjects
from .syllabi import Syllabi

STAGES: tuple[type[Stage], ...] = (Subjects, Syllabi, Questions, Answers)
STAGE_NAMES = tuple(stage.name for stage in STAGES)  # prompt files and settings keys
TAXONOMY = "taxonomy"  # the config of the disciplines themselves, one row each: no stage writes it
CONFIGS = (TAXONOMY, *(stage.config for stage in STAGES))  # dataset configs, in build order
DEFAULT_CONFIG = Answers.config  # what trainers load: `load_dataset(repo)` with no config
FEATURES = {TAXONOMY: TAXONOMY_FEATURES, **{stage.config: stage.features for stage in STAGES}}
TEXTS = {stage.config: stage.texts for stage in STAGES}  # config -> the text columns stats measure in a row

# `glan taxonomy propose` asks for this (prompts/propose.yaml); it is no stage of a build.
PROPOSAL = Output("TaxonomyProposal", lambda settings: TaxonomyProposal)
# Every output a prompt file may name, by that name: each stage's, then the JSON forms of the free-text ones, then
# the proposal's.
OUTPUTS: dict[str, Output] = {
    **{stage.output.name: stage.output for stage in STAGES},
    **{
        stage.output.json_form: Output(stage.output.json_form, stage.output.record)
        for stage in STAGES
        if stage.output.json_form
    },
    PROPOSAL.name: PROPOSAL,
}
JSON_FORMS = {stage.output.name: json_form for stage in STAGES if (json_form := stage.output.json_form)}


def depth_of(configs: list[str]) -> int:
    """How many stages the deepest of `configs` needs."""
    return max(CONFIGS.index(config) for config in configs)


__all__ = [
    "CONFIGS",
    "DEFAULT_CONFIG",
    "FEATURES",
    "JSON_FORMS",
    "OUTPUTS",
    "PROPOSAL",
    "STAGES",
    "STAGE_NAMES",
    "TAXONOMY",
    "TEXTS",
    "Output",
    "Stage",
    "StageContext",
    "depth_of",
]
