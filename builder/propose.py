"""`glan taxonomy propose`: the paper's LLM-assisted taxonomy growth, as YAML for a person to review.

The proposal is printed in taxonomy.yaml's own schema and never merged: a human decides what joins
the taxonomy. Disciplines already present (by id) are dropped from the proposal.
"""

from __future__ import annotations

import logging

import yaml

from .execute.engine import engine_for
from .llm import loop
from .llm.attempts import LLMRequest
from .llm.engine import Engine
from .plan import Run
from .prompts import load_prompt
from .schemas import TaxonomyProposal
from .stages import OUTPUTS
from .taxonomy import TaxonomyError, slugify
from .wording import counted

log = logging.getLogger("glan")


def propose(run: Run, under: str, count: int) -> int:
    taxonomy = run.taxonomy
    field_name, _, subfield_name = under.partition("/")
    if under and not _exists(taxonomy, field_name, subfield_name):
        raise TaxonomyError(
            run.settings.taxonomy,
            None,
            "--under",
            f'no field or sub-field "{under}". '
            'Name one as written in the taxonomy, e.g. --under "Mathematics/Elementary Mathematics".',
        )
    prompt = load_prompt(run.prompts_dir, "propose")
    request = LLMRequest(
        "propose",
        prompt.render(outline=_outline(taxonomy), under=under, count=count),
        prompt.params,
        OUTPUTS[prompt.output_model].model(run.generation),
    )
    route = run.stages["subjects"].route  # the strong model the paper uses for curriculum design
    with engine_for(run) as engine:
        result = loop.run(_ask(engine, route, request))
    if not result.ok:
        log.error(f"glan: the model gave no usable proposal ({result.failure}); run again or use another model.")
        return 1
    known = {ref.discipline_id for ref in taxonomy.disciplines()}
    fields, found = _new_only(result.value, known, field_name, subfield_name, count)
    if found < count:
        log.warning(
            f"glan: the model proposed {counted(found, 'new discipline')} of the {count} asked for (it repeated some "
            "the taxonomy has, or gave fewer); run again for more."
        )
    print(
        f"# Proposed by {route.model} for {run.settings.taxonomy} (version {taxonomy.version}).\n"
        "# Review it, then merge what you keep into taxonomy.yaml by hand and bump its version."
    )
    print(yaml.safe_dump({"fields": fields}, sort_keys=False, allow_unicode=True), end="")
    return 0


async def _ask(engine: Engine, route, request: LLMRequest):
    async with engine:
        return await engine.complete("propose", route, request, engine.cache)


def _exists(taxonomy, field_name: str, subfield_name: str) -> bool:
    for field in taxonomy.fields:
        if field.name == field_name:
            return not subfield_name or any(sub.name == subfield_name for sub in field.subfields)
    return False


def _outline(taxonomy) -> str:
    lines = []
    for field in taxonomy.fields:
        lines.append(field.name)
        for subfield in field.subfields:
            lines.append(f"  {subfield.name}: " + ", ".join(d.name for d in subfield.disciplines))
    return "\n".join(lines)


def _new_only(
    proposal: TaxonomyProposal, known_ids: set[str], field_name: str, subfield_name: str, count: int
) -> tuple[list[dict], int]:
    """The proposal's first `count` new disciplines (a model may give more than it is asked for), placed under
    --under when given, in taxonomy.yaml's schema; and how many they are."""
    fields: dict[str, dict[str, list[dict]]] = {}
    found = 0
    for field in proposal.fields:
        for subfield in field.subfields:
            for discipline in subfield.disciplines:
                discipline_id = slugify(discipline.name)
                if not discipline_id or discipline_id in known_ids or found == count:
                    continue
                found += 1
                known_ids.add(discipline_id)
                place = fields.setdefault(field_name or field.name, {})
                place.setdefault(subfield_name or subfield.name, []).append(
                    {"name": discipline.name.strip(), "description": discipline.description.strip()}
                )
    return [
        {"name": field, "subfields": [{"name": sub, "disciplines": disciplines} for sub, disciplines in subs.items()]}
        for field, subs in fields.items()
    ], found
