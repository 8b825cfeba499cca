"""The card template: glan's own (card.md beside this file) or the one taxonomy.yaml names (`card.template`).

A template is markdown with jinja2 variables, rendered by `huggingface_hub.DatasetCard.from_template`.
It is checked when the taxonomy loads, before any request: it must parse, begin with the YAML header
the Hub reads, and use only the variables below (docs/card.md describes each).
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.meta

DEFAULT_TEMPLATE = Path(__file__).parent / "card.md"
HEADER = "---\n{{ card_data }}\n---"
REPO_ID = "<repo_id>"  # written where the repo id goes; `glan push` replaces it, and nothing else in the card

VARIABLES = frozenset({
    # the YAML header, and its fields one by one (huggingface_hub passes the card data's fields too)
    "card_data", "license", "license_name", "license_link", "language", "tags", "pretty_name",
    "task_categories", "size_categories", "configs", "dataset_info",
    # taxonomy.yaml's card block
    "title", "summary", "uses", "out_of_scope_uses", "limitations", "sections",
    # the release
    "demo_notice", "version", "tag", "repo_id", "about", "configs_table", "taxonomy_tables", "generation_table",
    "models_table", "failures_table", "quality_section", "reproduce", "prompt_files_table", "citation",
    "manifest",
})


def template_problem(text: str) -> str | None:
    """What is wrong with a card template, or None."""
    try:
        variables = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(text))
    except jinja2.TemplateSyntaxError as error:
        return f"line {error.lineno}: {error.message.rstrip('.')}. Fix the jinja2 syntax"
    if not text.startswith(HEADER):
        return f"does not begin with the YAML header the Hub reads. Make its first three lines {HEADER!r}"
    if unknown := sorted(variables - VARIABLES):
        return (f"unknown variable {', '.join(unknown)}. The variables are: {', '.join(sorted(VARIABLES))} "
                "(docs/card.md)")
    return None
