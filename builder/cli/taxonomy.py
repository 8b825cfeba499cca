"""`glan taxonomy validate | diff | propose`: check, compare and grow taxonomy files."""

from __future__ import annotations

from ..config.run import DEFAULT_TAXONOMY, DEFAULT_WORK_DIR
from .args import whole_number
from .output import print_json
from .run import local_model_flag


def add_parser(commands, preset_help: str) -> None:
    taxonomy = commands.add_parser("taxonomy", help="check, compare or grow taxonomy files")
    taxonomy_commands = taxonomy.add_subparsers(dest="taxonomy_command", required=True)
    validate = taxonomy_commands.add_parser("validate", help="check a taxonomy file; exit 2 on the first problem")
    validate.add_argument("path", nargs="?", default=DEFAULT_TAXONOMY, help="the taxonomy file")
    validate.add_argument("--json", action="store_true", help="print the summary as one JSON document on stdout")
    validate.set_defaults(run=run_validate)
    propose = taxonomy_commands.add_parser(
        "propose", help="ask the LLM for new disciplines, printed as taxonomy YAML to review (never merged)"
    )
    propose.add_argument("--taxonomy", default=DEFAULT_TAXONOMY, help="the taxonomy to grow")
    propose.add_argument(
        "--prompts",
        help="folder of prompt files (default: prompts/ beside the taxonomy, else the prompts shipped with glan)",
    )
    propose.add_argument("--under", default="", help='"Field" or "Field/Sub-field" to grow (default: anywhere)')
    propose.add_argument("--count", type=whole_number(1), default=10, help="how many disciplines to ask for")
    propose.add_argument(
        "--model", help="model to ask (default: the subjects stage's model; with no endpoint, the embedded local model)"
    )
    propose.add_argument("--base-url", help="OpenAI-compatible endpoint (default: as for `glan build`)")
    propose.add_argument("--preset", help=preset_help)
    propose.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help="the response cache")
    propose.add_argument("--local-model", **local_model_flag())
    propose.set_defaults(run=run_propose, log_file=True)
    listing = taxonomy_commands.add_parser(
        "list",
        help="every discipline's id and Field/Sub-field/Discipline, what --disciplines takes",
        description="One line a discipline, in taxonomy order: its id, then Field/Sub-field/Discipline. "
        '--disciplines takes either, or a pattern over them ("Mathematics/*", "*-chemistry").',
    )
    listing.add_argument("--taxonomy", default=DEFAULT_TAXONOMY, help="the taxonomy file")
    listing.add_argument("--under", default="", help='"Field" or "Field/Sub-field" (default: the whole taxonomy)')
    listing.set_defaults(run=run_list)
    diff = taxonomy_commands.add_parser("diff", help="what changed between two taxonomy files")
    diff.add_argument("old", help="the older taxonomy file")
    diff.add_argument("new", help="the newer taxonomy file")
    diff.set_defaults(run=run_diff)


def run_validate(args) -> int:
    """Exit 0 with a one-line summary, or 2 with the first problem on stderr: the taxonomy, then its prompts (beside
    it, else glan's) and its card template, each rendered with the variables a build gives it."""
    from .. import preflight
    from ..config.run import RunSettings
    from ..plan import resolve
    from ..publish.card import check_card_template
    from ..stages import CONFIGS
    from ..taxonomy import load_taxonomy
    from ..wording import counted

    taxonomy = load_taxonomy(args.path)
    # The templates render as a build's would; the model and the endpoint are placeholders that get no request.
    run = resolve(
        RunSettings(taxonomy=args.path, model="validate", base_url="http://127.0.0.1", progress=False), taxonomy
    )
    preflight.check_templates(run)
    check_card_template(run, list(CONFIGS))
    subfields = sum(len(field.subfields) for field in taxonomy.fields)
    if args.json:
        print_json(
            {
                "path": args.path,
                "version": taxonomy.version,
                "fields": len(taxonomy.fields),
                "subfields": subfields,
                "disciplines": len(taxonomy.disciplines()),
                "presets": sorted(taxonomy.presets),
            }
        )
        return 0
    presets = ", ".join(sorted(taxonomy.presets)) or "none"
    print(
        f"{args.path}: version {taxonomy.version}, {counted(len(taxonomy.fields), 'field')}, "
        f"{counted(subfields, 'sub-field')}, {counted(len(taxonomy.disciplines()), 'discipline')}, presets: {presets}"
    )
    return 0


def run_list(args) -> int:
    from ..taxonomy import discipline_path, disciplines_under, load_taxonomy

    refs = disciplines_under(load_taxonomy(args.taxonomy), args.under, args.taxonomy)
    width = max(len(ref.discipline_id) for ref in refs)
    for ref in refs:
        print(f"{ref.discipline_id:<{width}}  {discipline_path(ref)}")
    return 0


def run_diff(args) -> int:
    from ..taxonomy import diff_taxonomies, format_diff, load_taxonomy

    print(format_diff(diff_taxonomies(load_taxonomy(args.old), load_taxonomy(args.new))))
    return 0


def run_propose(args) -> int:
    from ..execute.serve import serving
    from ..propose import propose
    from .run import resolved

    with serving(resolved(args, progress=False)) as run:
        return propose(run, args.under, args.count)
