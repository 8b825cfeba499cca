"""What a card template may hold: glan's own (builder/publish/card.md) or the one taxonomy.yaml names
(`card.template`).

A template is markdown with jinja2 variables, rendered in the template sandbox (builder/templates.py: a
pulled release carries its card template, so it is untrusted) the way `DatasetCard.from_template` renders
(builder/publish/card.py). It is checked when the taxonomy loads: it must parse, begin with the YAML header the
Hub reads, use only the variables below (docs/card.md describes each) and name nothing the sandbox refuses;
before any request, the build renders it with real variables.
"""

from __future__ import annotations

import jinja2
import jinja2.meta

from ..config.yamlfile import FileError
from ..templates import Sandbox, refused_access

HEADER = "---\n{{ card_data }}\n---"

VARIABLES = frozenset(
    {
        # the YAML header, and its fields one by one (huggingface_hub passes the card data's fields too)
        "card_data",
        "license",
        "license_name",
        "license_link",
        "language",
        "tags",
        "pretty_name",
        "task_categories",
        "size_categories",
        "configs",
        "dataset_info",
        # taxonomy.yaml's card block
        "title",
        "summary",
        "uses",
        "out_of_scope_uses",
        "limitations",
        "sections",
        # the release
        "demo_notice",
        "version",
        "tag",
        "repo_id",
        "about",
        "configs_table",
        "taxonomy_tables",
        "generation_table",
        "models_table",
        "failures_table",
        "quality_section",
        "judge_section",
        "charts_section",
        "repetition_section",
        "reproduce",
        "prompt_files_table",
        "citation",
        "manifest",
    }
)


SANDBOX = Sandbox()  # jinja2.Template's options, as DatasetCard.from_template renders


class CardTemplateError(FileError):
    """A card template that fails to render; the message names the file, the line and what to fix."""

    example = "glan's own card template (builder/publish/card.md)"


def template_problem(text: str) -> str | None:
    """What is wrong with a card template, or None."""
    try:
        variables = jinja2.meta.find_undeclared_variables(SANDBOX.parse(text))
        refused = refused_access(text, SANDBOX)
    except jinja2.TemplateSyntaxError as error:
        return f"line {error.lineno}: {(error.message or '').rstrip('.')}. Fix the jinja2 syntax"
    if refused:
        return (
            f"line {refused[0]}: reaches for {refused[1]!r}, which the template sandbox refuses (names starting "
            "with _). Use only the card's variables and their fields (docs/card.md, docs/security.md)"
        )
    if not text.startswith(HEADER):
        return f"does not begin with the YAML header the Hub reads. Make its first three lines {HEADER!r}"
    if unknown := sorted(variables - VARIABLES):
        return (
            f"unknown variable {', '.join(unknown)}. The variables are: {', '.join(sorted(VARIABLES))} (docs/card.md)"
        )
    return None
