from pathlib import Path

import pytest

from glan.cli import main
from glan.plan import resolve
from glan.config.run import RunSettings
from glan.config.settings import Generation
from glan.taxonomy import (
    ABSENT,
    SettingChange,
    TaxonomyError,
    diff_taxonomies,
    format_diff,
    load_taxonomy,
    slugify,
)

SHIPPED = Path(__file__).resolve().parents[1] / "taxonomy.yaml"

# Lines 2-8 of every small taxonomy below; cases append to it or put settings before it.
FIELDS = """\
fields:
  - name: Sciences
    subfields:
      - name: Chemistry
        disciplines:
          - name: Organic Chemistry
          - name: Inorganic Chemistry
"""
VALID = "version: 1.0.0\n" + FIELDS


def settings_then_fields(settings: str) -> str:
    return "version: 1.0.0\n" + settings + FIELDS


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write YAML to ./taxonomy.yaml inside tmp_path, so messages start with "taxonomy.yaml:"."""
    monkeypatch.chdir(tmp_path)

    def write_taxonomy(text: str, name: str = "taxonomy.yaml") -> str:
        Path(name).write_text(text, encoding="utf-8")
        return name

    return write_taxonomy


# ---- the shipped taxonomy ---------------------------------------------------------------------


def test_shipped_taxonomy_loads_with_unique_ids_and_presets():
    taxonomy = load_taxonomy(SHIPPED)
    refs = taxonomy.disciplines()
    assert taxonomy.version == "1.0.0"
    assert len(refs) >= 110
    assert len({ref.discipline_id for ref in refs}) == len(refs)
    assert all(ref.description for ref in refs)
    assert sorted(taxonomy.presets) == ["demo", "judged", "paper", "smoke"]
    for preset in taxonomy.presets:
        assert isinstance(taxonomy.settings(preset), Generation)


def test_shipped_taxonomy_is_at_paper_scale_with_explicit_ids():
    taxonomy = load_taxonomy(SHIPPED)
    generation = taxonomy.generation
    assert (generation.subjects.samples, generation.subjects.per_sample.min, generation.subjects.per_sample.max) == (10, 10, 20)
    assert (generation.syllabus.sessions.min, generation.syllabus.sessions.max) == (10, 30)
    assert generation.questions.per_subject == 300
    assert generation.quality.test_split.per_discipline == 50
    assert set(generation.prices) == {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"}
    ids = [ref.discipline_id for ref in taxonomy.disciplines()]
    assert {"organic-chemistry", "elementary-arithmetic", "school-algebra", "school-statistics", "python-programming"} <= set(ids)


def test_validate_command_prints_a_summary(capsys):
    assert main(["taxonomy", "validate", str(SHIPPED)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{SHIPPED}: version 1.0.0, 10 fields, 31 sub-fields, 149 disciplines, presets: demo, judged, paper, smoke\n"
    assert err == ""


# ---- settings and presets --------------------------------------------------------------------


def test_demo_preset_overrides_only_what_it_names():
    taxonomy = load_taxonomy(SHIPPED)
    demo = taxonomy.settings("demo")
    assert demo.subjects.samples == 1
    assert (demo.subjects.per_sample.min, demo.subjects.per_sample.max) == (1, 2)
    assert demo.questions.per_subject == 2
    assert demo.subjects.max_tokens == 400
    assert demo.quality.test_split.per_discipline == 1
    assert demo.quality.dedup == taxonomy.generation.quality.dedup
    assert demo.questions.single_session_share == 0.5
    assert [ref.discipline_id for ref in taxonomy.disciplines(demo)] == ["elementary-arithmetic", "python-programming"]
    assert taxonomy.settings(None) is taxonomy.generation


def test_paper_preset_sets_models_and_sampling():
    """As the paper: the strong model writes subjects, syllabi and questions at T=1.0, top_p=0.95, the cheaper
    one answers at T=0.7, top_p=0.95 (GPT-4 and GPT-3.5 then, their successors now)."""
    paper = resolve(RunSettings(taxonomy=str(SHIPPED), preset="paper"))
    assert {name: (plan.route.model, plan.params["temperature"], plan.params["top_p"])
            for name, plan in paper.stages.items()} == {
        "subjects": ("gpt-4o", 1.0, 0.95), "syllabus": ("gpt-4o", 1.0, 0.95), "questions": ("gpt-4o", 1.0, 0.95),
        "answers": ("gpt-4o-mini", 0.7, 0.95)}
    assert paper.generation.questions.per_subject == 300


def test_unknown_preset_lists_the_known_ones(write):
    path = write(settings_then_fields("presets:\n  fast: {seed: 7}\n  tiny: {seed: 8}\n"))
    taxonomy = load_taxonomy(path)
    assert taxonomy.settings("fast").seed == 7
    with pytest.raises(TaxonomyError) as error:
        taxonomy.settings("quick")
    assert str(error.value) == (
        'taxonomy.yaml:2: presets: unknown preset "quick". Known presets: fast, tiny; '
        'pick one or add "quick:" under "presets:".'
    )


def test_a_single_base_url_becomes_a_list(write):
    path = write(settings_then_fields("generation:\n  answers: {base_urls: http://localhost:8000/v1}\n"))
    assert load_taxonomy(path).generation.answers.base_urls == ["http://localhost:8000/v1"]


def test_slugify():
    assert slugify("Fractions, Decimals and Percentages") == "fractions-decimals-and-percentages"
    assert slugify("  C and C++ Programming ") == "c-and-c-programming"
    assert slugify("Économie Politique") == "economie-politique"


# ---- malformed taxonomies: one exact message each --------------------------------------------

MALFORMED = {
    "yaml syntax": (
        "version: 1.0.0\nfields:\n  - name: Sciences: Natural\n",
        'taxonomy.yaml:3: YAML syntax error: mapping values are not allowed in this context (column 19). Check the '
        'indentation, and quote text that contains ": " or starts with a special character.',
    ),
    "empty file": (
        "# nothing yet\n",
        'taxonomy.yaml:1: the file is empty, not a taxonomy. A taxonomy needs "version:" and "fields:"; '
        "run `glan init` to start from the one shipped with glan.",
    ),
    "top level is a list": (
        "- Organic Chemistry\n- Optics\n",
        'taxonomy.yaml:1: the top level is a list, not a taxonomy. A taxonomy is a mapping with "version:" '
        'and "fields:" at the top; run `glan init` to start from the one shipped with glan.',
    ),
    "disciplines is a string": (
        VALID.replace("disciplines:\n          - name: Organic Chemistry\n          - name: Inorganic Chemistry\n",
                      "disciplines: Organic Chemistry\n"),
        'taxonomy.yaml:6: fields[0].subfields[0].disciplines: expected a list, got text ("Organic Chemistry"). '
        'Write one item per line, each starting with "- ".',
    ),
    "samples is a word": (
        settings_then_fields("generation:\n  subjects:\n    samples: ten\n"),
        'taxonomy.yaml:4: generation.subjects.samples: expected a whole number, got text ("ten"). '
        "Write digits only, e.g. 10.",
    ),
    "missing name": (
        VALID + "          - description: Molecules of life.\n",
        'taxonomy.yaml:9: fields[0].subfields[0].disciplines[2].name: missing. '
        'Every discipline needs a name, e.g. "name: Organic Chemistry".',
    ),
    "empty name": (
        VALID.replace("  - name: Sciences", '  - name: ""'),
        'taxonomy.yaml:3: fields[0].name: empty. Give the field a name, e.g. "name: Natural Sciences".',
    ),
    "duplicate discipline": (
        VALID + "          - name: organic chemistry\n",
        'taxonomy.yaml:9: fields[0].subfields[0].disciplines[2]: duplicate discipline "organic chemistry" '
        '(id organic-chemistry), already on line 7. Delete one, or give each a distinct "id:" if they are '
        "different disciplines.",
    ),
    "duplicate explicit id": (
        VALID.replace("- name: Organic Chemistry", "- name: Organic Chemistry\n            id: chem")
        + "          - name: Chemistry of Life\n            id: chem\n",
        'taxonomy.yaml:11: fields[0].subfields[0].disciplines[2].id: id "chem" is already used on line 7 by '
        '"Organic Chemistry". Ids are unique; pick another id.',
    ),
    "invalid id": (
        VALID.replace("- name: Organic Chemistry", "- name: Organic Chemistry\n            id: Organic_Chem"),
        'taxonomy.yaml:8: fields[0].subfields[0].disciplines[0].id: invalid id "Organic_Chem". An id is '
        'lowercase letters and digits joined by single hyphens, e.g. "organic-chemistry".',
    ),
    "empty sub-field": (
        VALID + "      - name: Physics\n        disciplines: []\n",
        "taxonomy.yaml:10: fields[0].subfields[1].disciplines: empty. A sub-field needs at least one "
        "discipline; add one or delete the sub-field.",
    ),
    "empty field": (
        VALID + "  - name: Arts\n    subfields: []\n",
        "taxonomy.yaml:10: fields[1].subfields: empty. A field needs at least one sub-field; add one or "
        "delete the field.",
    ),
    "unknown key": (
        VALID.replace("- name: Organic Chemistry", "- name: Organic Chemistry\n            descripton: Carbon."),
        'taxonomy.yaml:8: fields[0].subfields[0].disciplines[0].descripton: unknown key "descripton". '
        'Did you mean "description"? Allowed keys here: name, id, description.',
    ),
    "bad version": (
        VALID.replace("version: 1.0.0", "version: 1.0"),
        'taxonomy.yaml:1: version: expected a version X.Y.Z, got a number (1.0). Write e.g. "version: 1.0.0" '
        "and bump it whenever the taxonomy changes.",
    ),
    "range min above max": (
        settings_then_fields("generation:\n  syllabus:\n    sessions: {min: 30, max: 10}\n"),
        "taxonomy.yaml:4: generation.syllabus.sessions: min 30 is greater than max 10. Set min <= max.",
    ),
    "share outside [0, 1]": (
        settings_then_fields("generation:\n  questions:\n    single_session_share: 1.5\n"),
        "taxonomy.yaml:4: generation.questions.single_session_share: 1.5 is outside [0, 1]. It is the "
        "fraction of questions drawn from a single session, e.g. 0.5 for half single-session and half "
        "two-session questions.",
    ),
    "duplicate yaml key": (
        settings_then_fields("generation:\n  seed: 1\n  levels: [introductory]\n  seed: 2\n"),
        "taxonomy.yaml:5: generation.seed: key appears twice (lines 3 and 5). YAML would silently keep only "
        "the last one; delete or rename one of them.",
    ),
    "error inside a preset": (
        settings_then_fields("presets:\n  fast:\n    subjects:\n      per_sample: {max: 2}\n"),
        "taxonomy.yaml:5: presets.fast.subjects.per_sample: min 10 is greater than max 2. Set min <= max.",
    ),
    "range below 1": (
        settings_then_fields("generation:\n  syllabus:\n    key_concepts: {min: 0, max: 3}\n"),
        "taxonomy.yaml:4: generation.syllabus.key_concepts.min: 0 is too small. It must be at least 1.",
    ),
    "unknown discipline id in a preset": (
        settings_then_fields("presets:\n  demo:\n    discipline_ids: [organic-chem]\n"),
        'taxonomy.yaml:4: presets.demo.discipline_ids[0]: unknown discipline id "organic-chem". '
        'Did you mean "organic-chemistry"?',
    ),
    "api key instead of a variable name": (
        settings_then_fields("generation:\n  answers: {api_key_env: sk-proj-abc123}\n"),
        "taxonomy.yaml:3: generation.answers.api_key_env: expected the NAME of an environment variable, not "
        'a key. Write e.g. "api_key_env: OPENAI_API_KEY" and export the key in that variable.',
    ),
}


@pytest.mark.parametrize("text, expected", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_taxonomy_gives_one_exact_message(write, capsys, text, expected):
    path = write(text)
    with pytest.raises(TaxonomyError) as error:
        load_taxonomy(path)
    assert str(error.value) == expected

    assert main(["taxonomy", "validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"glan: {expected}\n")
    assert sorted(entry.name for entry in Path.cwd().iterdir()) == ["taxonomy.yaml"]


def test_missing_file_says_so(write):
    with pytest.raises(TaxonomyError) as error:
        load_taxonomy("nowhere.yaml")
    assert str(error.value) == (
        "nowhere.yaml: file not found. Pass the path of a taxonomy YAML, or run `glan init` to start from the one "
        "shipped with glan."
    )


def test_the_earliest_problem_in_the_file_is_reported(write):
    text = settings_then_fields("generation:\n  seed: many\n") + "          - name: ''\n"
    with pytest.raises(TaxonomyError) as error:
        load_taxonomy(write(text))
    assert str(error.value).startswith("taxonomy.yaml:3: generation.seed: expected a whole number")


# ---- diff ----------------------------------------------------------------------------------------

NEW = """\
version: 1.1.0
generation:
  subjects: {samples: 3}
fields:
  - name: Sciences
    subfields:
      - name: Chemistry
        disciplines:
          - name: Carbon Chemistry
            id: organic-chemistry
      - name: Physics
        disciplines:
          - name: Optics
"""


def test_diff_finds_added_removed_renamed_and_settings(write):
    old = load_taxonomy(write(VALID, "old.yaml"))
    new = load_taxonomy(write(NEW, "new.yaml"))
    diff = diff_taxonomies(old, new)
    assert [ref.discipline_id for ref in diff.added] == ["optics"]
    assert [ref.discipline_id for ref in diff.removed] == ["inorganic-chemistry"]
    assert [(before.discipline, after.discipline) for before, after in diff.renamed] == [
        ("Organic Chemistry", "Carbon Chemistry")
    ]
    assert diff.moved == []
    assert diff.settings == [SettingChange("generation.subjects.samples", 10, 3)]
    assert format_diff(diff) == (
        "taxonomy 1.0.0 -> 1.1.0\n"
        "added (1):\n"
        '  + optics: "Optics" in Sciences / Physics\n'
        "removed (1):\n"
        '  - inorganic-chemistry: "Inorganic Chemistry" in Sciences / Chemistry\n'
        "renamed (1):\n"
        '  ~ organic-chemistry: "Organic Chemistry" -> "Carbon Chemistry"\n'
        "settings changed (1):\n"
        "  ~ generation.subjects.samples: 10 -> 3"
    )


def test_diff_finds_moves_new_prices_and_an_unbumped_version(write):
    old = load_taxonomy(write(VALID, "old.yaml"))
    moved = VALID.replace("          - name: Inorganic Chemistry\n", "") + (
        "      - name: Materials\n        disciplines:\n          - name: Inorganic Chemistry\n"
    )
    priced = moved.replace("\nfields:", "\ngeneration:\n  prices: {gpt-5: {input_per_million: 1, output_per_million: 2}}\nfields:")
    diff = diff_taxonomies(old, load_taxonomy(write(priced, "new.yaml")))
    assert [(before.subfield, after.subfield) for before, after in diff.moved] == [("Chemistry", "Materials")]
    assert diff.settings == [
        SettingChange('generation.prices.gpt-5', ABSENT, {"input_per_million": 1.0, "output_per_million": 2.0, "cached_input_per_million": None})
    ]
    assert format_diff(diff) == (
        "taxonomy 1.0.0 -> 1.0.0\n"
        "moved (1):\n"
        "  > inorganic-chemistry: Sciences / Chemistry -> Sciences / Materials\n"
        "settings changed (1):\n"
        '  ~ generation.prices.gpt-5: (absent) -> {"input_per_million": 1.0, "output_per_million": 2.0, "cached_input_per_million": null}\n'
        "note: the taxonomy changed but its version is still 1.0.0; bump it before publishing."
    )


def test_diff_of_a_taxonomy_with_itself_is_empty():
    taxonomy = load_taxonomy(SHIPPED)
    diff = diff_taxonomies(taxonomy, taxonomy)
    assert diff.is_empty
    assert format_diff(diff) == "taxonomy 1.0.0 -> 1.0.0: no changes"


# ---- the card block -------------------------------------------------------------------------------

CARD_ERRORS = {
    "license name without license other": (
        "license: apache-2.0\ncard:\n  license_name: mine\n", None,
        'taxonomy.yaml:4: card.license_name: applies only to "license: other"; this taxonomy declares "license: '
        'apache-2.0", a license the Hub knows by its id. Delete it, or write "license: other".',
    ),
    "language code": (
        "card:\n  language: [english]\n", None,
        'taxonomy.yaml:3: card.language: "english" is not a language code. Write ISO 639 codes, e.g. [en] or '
        "[en, fr].",
    ),
    "unknown key": (
        "card:\n  titel: Mine\n", None,
        'taxonomy.yaml:3: card.titel: unknown key "titel". Did you mean "title"? Allowed keys here: title, summary, '
        "language, tags, license_name, license_link, uses, out_of_scope_uses, limitations, sections, template.",
    ),
    "template outside the folder": (
        "card:\n  template: ../card.md\n", None,
        'taxonomy.yaml:3: card.template: "../card.md" is outside the taxonomy\'s folder. Put the template beside '
        "taxonomy.yaml (a release carries it there) and write its relative path.",
    ),
    "missing template": (
        "card:\n  template: card.md\n", None,
        "taxonomy.yaml:3: card.template: card.md: no such file. Write the path of a card template relative to "
        "taxonomy.yaml, or delete the key to use glan's own.",
    ),
    "template without the YAML header": (
        "card:\n  template: card.md\n", "# {{ title }}\n",
        "taxonomy.yaml:3: card.template: card.md: does not begin with the YAML header the Hub reads. Make its first "
        "three lines '---\\n{{ card_data }}\\n---'.",
    ),
    "template with a syntax error": (
        "card:\n  template: card.md\n", "---\n{{ card_data }}\n---\n\n{% if title %}\n# {{ title }}\n",
        "taxonomy.yaml:3: card.template: card.md: line 6: Unexpected end of template. Jinja was looking for the "
        "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'. Fix the "
        "jinja2 syntax.",
    ),
    "template with an unknown variable": (
        "card:\n  template: card.md\n", "---\n{{ card_data }}\n---\n\n# {{ title }} by {{ author }}\n",
        "taxonomy.yaml:3: card.template: card.md: unknown variable author. The variables are: about, card_data, charts_section, "
        "citation, configs, configs_table, dataset_info, demo_notice, failures_table, generation_table, judge_section, language, "
        "license, license_link, license_name, limitations, manifest, models_table, out_of_scope_uses, pretty_name, "
        "prompt_files_table, quality_section, repetition_section, repo_id, reproduce, sections, size_categories, summary, tag, "
        "tags, task_categories, taxonomy_tables, title, uses, version (docs/card.md).",
    ),
}


@pytest.mark.parametrize("settings, template, expected", CARD_ERRORS.values(), ids=CARD_ERRORS.keys())
def test_a_bad_card_block_gives_one_exact_message(write, settings, template, expected):
    if template is not None:
        Path("card.md").write_text(template)
    path = write(settings_then_fields(settings))
    with pytest.raises(TaxonomyError) as error:
        load_taxonomy(path)
    assert str(error.value) == expected


def test_a_card_block_with_a_template_loads(write):
    Path("card.md").write_text("---\n{{ card_data }}\n---\n\n# {{ title }}\n{% for s in sections %}{{ s.title }}{% endfor %}\n")
    taxonomy = load_taxonomy(write(settings_then_fields(
        "license: other\ncard:\n  title: Mine\n  license_name: mine\n  license_link: LICENSE.md\n  template: card.md\n"
        "  sections:\n    - {title: Extra, body: Text}\n")))
    assert (taxonomy.card.title, taxonomy.card.template, taxonomy.card.sections[0].title) == ("Mine", "card.md", "Extra")
