"""The dataset configs a build writes, by name, in build order. The stages (builder/stages/) fill them and say
which one each fills; the names are here, apart from the stages, because the command line offers them before it
imports any stage (a stage imports datasets, a second's start-up). tests/test_stages.py checks the two agree."""

TAXONOMY = "taxonomy"  # the config of the disciplines themselves, one row each: no stage writes it
CONFIGS = (TAXONOMY, "subjects", "syllabi", "questions", "instructions")
DEFAULT_CONFIG = "instructions"  # what trainers load: `load_dataset(repo)` with no config
