"""The taxonomy: its tree model, loading with file:line errors, and the diff of two versions."""

from ..config.yamlfile import TaxonomyError
from .diff import ABSENT, SettingChange, TaxonomyDiff, diff_taxonomies, format_diff
from .load import load_taxonomy
from .model import DisciplineRef, Taxonomy, slugify
from .select import discipline_path, disciplines_under, select_disciplines

__all__ = [
    "ABSENT",
    "DisciplineRef",
    "SettingChange",
    "Taxonomy",
    "TaxonomyDiff",
    "TaxonomyError",
    "diff_taxonomies",
    "discipline_path",
    "disciplines_under",
    "format_diff",
    "load_taxonomy",
    "select_disciplines",
    "slugify",
]
