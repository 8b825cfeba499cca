"""YAML that would hang, blow the stack, crash or hide a mistake is refused with one line naming file and
line: alias bombs, alias loops, runaway nesting, duplicate keys on one line, control characters, tagged
values that are not of their tag, a second document, non-UTF-8 bytes. Aliases within bounds (and merge keys) still work. Speed and memory: tests/benchmarks/taxonomy_bench.py.
Each is read with libyaml's loader and with PyYAML's own: the line is glan's, whichever of them (or glan) sees the
problem first."""

import os

import pytest
import yaml

import glan.config.yamlfile
from glan.cli import main
from glan.taxonomy import TaxonomyError, load_taxonomy

FIELDS = ("fields:\n  - name: Science\n    subfields:\n      - name: Chemistry\n        disciplines:\n"
          "          - name: Organic Chemistry\n")
LAUGHS = "".join(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
                 for previous, level in zip("abcdefgh", "bcdefghi"))

REFUSED = {
    "alias bomb": (
        'version: 1.0.0\na: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + LAUGHS + FIELDS,
        'taxonomy.yaml:6: e[0]: the alias "*d" grows the file past 10,044 values (22 written out up to here): nested '
        "aliases grow a file exponentially. Write the values out instead of nesting aliases.",
    ),
    "alias loop": (
        "version: 1.0.0\nlimits: &limits {again: *limits}\n" + FIELDS,
        'taxonomy.yaml:2: limits.again: the alias "*limits" is inside the value it names, a loop. Write the value '
        "out instead.",
    ),
    "undefined alias": (
        "version: 1.0.0\ngeneration: *defaults\n" + FIELDS,
        'taxonomy.yaml:2: generation: the alias "*defaults" names no value: there is no "&defaults" before it. Add '
        "the anchor or fix the name.",
    ),
    "lists nested 500 deep": (
        "version: 1.0.0\nfields: " + "[" * 500 + "]" * 500 + "\n",
        "taxonomy.yaml:2: fields: nested more than 32 levels deep; glan's files need at most 7. Check for unclosed "
        "brackets or runaway indentation.",
    ),
    "a million unclosed brackets": (
        "version: 1.0.0\nfields: " + "[" * 1_000_000 + "\n",
        "taxonomy.yaml:2: fields: nested more than 32 levels deep; glan's files need at most 7. Check for unclosed "
        "brackets or runaway indentation.",
    ),
    "a file of 2,000 open brackets": (
        "[" * 2_000 + "\n",
        "taxonomy.yaml:1: nested more than 32 levels deep; glan's files need at most 7. Check for unclosed brackets or "
        "runaway indentation.",
    ),
    "block lists nested 100 deep": (
        "version: 1.0.0\nfields:\n" + "".join("  " * depth + "-\n" for depth in range(1, 100)),
        "taxonomy.yaml:34: fields: nested more than 32 levels deep; glan's files need at most 7. Check for unclosed "
        "brackets or runaway indentation.",
    ),
    "duplicate key on one line": (
        "version: 1.0.0\ngeneration: {seed: 1, seed: 2}\n" + FIELDS,
        "taxonomy.yaml:2: generation.seed: key appears twice (lines 2 and 2). YAML would silently keep only the "
        "last one; delete or rename one of them.",
    ),
    "control character": (
        "version: 1.0.0\nfields: \x07\n",
        'taxonomy.yaml:2: unacceptable character #x0007 (column 9): control characters are not allowed. Delete it, '
        'or write it as "\\x07" inside double quotes.',
    ),
    "a control character after accented text": (
        "version: 1.0.0\nfields:\n  - name: Sciénce\x1b\n",
        'taxonomy.yaml:3: unacceptable character #x001b (column 18): control characters are not allowed. Delete it, '
        'or write it as "\\x1b" inside double quotes.',
    ),
    "a tagged value that is not of its tag": (
        "version: 1.0.0\ngeneration: {seed: !!int abc}\n" + FIELDS,
        "taxonomy.yaml:2: generation.seed: 'abc' cannot be read as int (invalid literal for int() with base 10: "
        "'abc'). Fix the value or remove the tag.",
    ),
    "second document": (
        "version: 1.0.0\n" + FIELDS + "---\nversion: 2.0.0\n",
        'taxonomy.yaml:8: a second YAML document starts here ("---"); a glan file holds one. Delete the "---" '
        "line or move the rest to another file.",
    ),
}


@pytest.fixture(params=[
    pytest.param("CSafeLoader", marks=pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"),
                                                         reason="this PyYAML was built without libyaml")),
    "SafeLoader",
])
def loader(request, monkeypatch):
    """glan reads YAML with libyaml's loader where PyYAML has it, else with PyYAML's own: each test runs with both."""
    monkeypatch.setattr(glan.config.yamlfile, "_Loader", getattr(yaml, request.param))


@pytest.mark.parametrize("text, expected", REFUSED.values(), ids=REFUSED.keys())
def test_dangerous_yaml_is_one_line_and_exit_2(text, expected, loader, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taxonomy.yaml").write_text(text)
    with pytest.raises(TaxonomyError) as error:
        load_taxonomy("taxonomy.yaml")
    assert str(error.value) == expected
    assert main(["taxonomy", "validate", "taxonomy.yaml"]) == 2
    assert capsys.readouterr() == ("", f"glan: {expected}\n")
    assert os.listdir(tmp_path) == ["taxonomy.yaml"]


def test_a_file_that_is_not_utf8_names_the_line_and_column(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taxonomy.yaml").write_bytes(b"version: 1.0.0\nfields:\n  - name: Sci\xe9nce\n")
    assert main(["taxonomy", "validate", "taxonomy.yaml"]) == 2
    assert capsys.readouterr().err == ("glan: taxonomy.yaml:3: not UTF-8 text: byte 0xe9 (column 14) is not valid "
                                       "UTF-8. Save the file with the UTF-8 encoding.\n")


def test_aliases_within_bounds_and_merge_keys_still_work(loader, tmp_path):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(
        "version: 1.0.0\n"
        "generation:\n"
        "  limits: &fast {concurrency: 8, timeout_s: 30}\n"
        "  levels: &levels [introductory, advanced]\n"
        "presets:\n"
        "  quick:\n"
        "    limits: {<<: *fast, concurrency: 2}\n"
        "    levels: *levels\n" + FIELDS
    )
    taxonomy = load_taxonomy(path)
    quick = taxonomy.settings("quick")
    assert (quick.limits.concurrency, quick.limits.timeout_s) == (2, 30)
    assert quick.levels == taxonomy.generation.levels == ["introductory", "advanced"]
