"""The stage registry: the LLM stages in order (the judge, last, runs only when the settings turn it on). A stage is
declared once, in its own module (builder/stages/base.py says what a declaration holds); prompt files, output models,
columns and the chain a unit runs derive from this registry, never repeated (the config names are
builder/configs.py's, which the command line reads without importing a stage). The names users' files carry stay as
they are: a stage's `name` is its prompt file (prompts/<name>.yaml) and its settings key (generation.<name>), its
`config` the dataset config. The judge fills the config of the stage before it (the instructions gain their score
columns), so a config may be filled by more than one stage."""

from ..configs import CONFIGS, DEFAULT_CONFIG, TAXONOMY
from ..schemas import TAXONOMY_FEATURES, TaxonomyProposal
from .answers import Answers
from .base import Output, Stage, StageContext
from .judge import Judge
from .questions import Questions
from .subjects import Subjects
from .syllabi import Syllabi

STAGES: tuple[type[Stage], ...] = (Subjects, Syllabi, Questions, Answers, Judge)
STAGE_NAMES = tuple(stage.name for stage in STAGES)  # prompt files and settings keys
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
    """How many stages of the registry the deepest of `configs` needs: up to the last stage that fills it (0 for
    the taxonomy alone)."""
    return max((index + 1 for index, stage in enumerate(STAGES) if stage.config in configs), default=0)


def refines(stage: type[Stage]) -> bool:
    """Whether `stage` fills the config of a stage before it (the judge) rather than a config of its own."""
    return STAGES.index(stage) > 0 and STAGES[STAGES.index(stage) - 1].config == stage.config


def label(stage: type[Stage]) -> str:
    """How summaries name a stage: its config, or its name when it refines the config of the stage before."""
    return stage.name if refines(stage) else stage.config


__all__ = [
    "CONFIGS",
    "DEFAULT_CONFIG",
    "FEATURES",
    "Judge",
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
    "label",
    "refines",
]
