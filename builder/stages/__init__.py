"""The stage registry: the four LLM stages in order. Config names, prompt files, output models and columns
are derived from it, never repeated."""

from ..schemas import TAXONOMY_FEATURES
from .answers import Answers
from .base import Stage, StageContext
from .questions import Questions
from .subjects import Subjects
from .syllabi import Syllabi

STAGES: tuple[type[Stage], ...] = (Subjects, Syllabi, Questions, Answers)
STAGE_NAMES = tuple(stage.name for stage in STAGES)  # prompt files and settings keys
CONFIGS = ("taxonomy", *(stage.config for stage in STAGES))  # dataset configs, in build order
FEATURES = {"taxonomy": TAXONOMY_FEATURES, **{stage.config: stage.features for stage in STAGES}}

__all__ = ["CONFIGS", "FEATURES", "STAGES", "STAGE_NAMES", "Stage", "StageContext"]
