"""The taxonomy: its tree model, loading with file:line errors, and the diff of two versions."""

from ..config.yamlfile import TaxonomyError
from .diff import ABSENT, SettingChange, TaxonomyDiff, diff_taxonomies, format_diff
from .load import load_taxonomy
from .model import DisciplineRef, Taxonomy, slugify

__all__ = [
    "ABSENT",
    "DisciplineRef",
    "SettingChange",
    "Taxonomy",
    "TaxonomyDiff",
    "TaxonomyError",
    "diff_taxonomies",
    "format_diff",
    "load_taxonomy",
    "slugify",
]
