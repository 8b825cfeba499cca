"""`glan taxonomy propose`: new disciplines in taxonomy.yaml's schema, never merged."""

import yaml

from glan.cli import main
from glan.taxonomy import load_taxonomy


def propose(server, tmp_path, capsys, *extra):
    capsys.readouterr()
    code = main(["taxonomy", "propose", "--model", "test-model", "--base-url", server.base_url,
                 "--work-dir", str(tmp_path / ".glan"), *extra])
    return code, capsys.readouterr()


def test_proposal_is_reviewable_taxonomy_yaml_of_new_disciplines_only(openai_server, tmp_path, capsys):
    before = open("taxonomy.yaml", "rb").read()
    code, printed = propose(openai_server, tmp_path, capsys, "--count", "5")
    assert code == 0
    assert printed.out.startswith("# Proposed by test-model for taxonomy.yaml (version 1.0.0).\n"
                                  "# Review it, then merge what you keep")
    proposal = yaml.safe_load(printed.out)
    fragment = tmp_path / "proposal.yaml"
    fragment.write_text(yaml.safe_dump({"version": "1.0.0", **proposal}))
    proposed = {ref.discipline_id for ref in load_taxonomy(fragment).disciplines()}  # valid in our own schema
    existing = {ref.discipline_id for ref in load_taxonomy("taxonomy.yaml").disciplines()}
    assert proposed and not proposed & existing
    assert open("taxonomy.yaml", "rb").read() == before  # never merged
    assert openai_server.stats()["requests"] == 1


def test_under_places_every_proposal_there(openai_server, tmp_path, capsys):
    code, printed = propose(openai_server, tmp_path, capsys, "--under", "Mathematics/Elementary Mathematics")
    assert code == 0
    fields = yaml.safe_load(printed.out)["fields"]
    assert [field["name"] for field in fields] == ["Mathematics"]
    assert [sub["name"] for sub in fields[0]["subfields"]] == ["Elementary Mathematics"]


def test_unknown_under_is_refused(openai_server, tmp_path, capsys):
    code, printed = propose(openai_server, tmp_path, capsys, "--under", "Alchemy")
    assert code == 2
    assert 'glan: taxonomy.yaml: --under: no field or sub-field "Alchemy".' in printed.err
    assert openai_server.stats()["requests"] == 0


def test_count_is_how_many_disciplines_are_printed(openai_server, tmp_path, capsys):
    """A model gives as many as it likes (the test server fills each list of the schema to its maximum): the
    proposal holds --count of them."""
    code, printed = propose(openai_server, tmp_path, capsys, "--count", "3")
    assert code == 0
    fields = yaml.safe_load(printed.out)["fields"]
    assert sum(len(sub["disciplines"]) for field in fields for sub in field["subfields"]) == 3
    assert printed.err == ""
