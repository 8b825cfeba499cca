"""What `glan build` says before and after: the plan line counts only what is not built yet, the summary names the
folder, and a count of disciplines takes the right number."""

from glan.config.run import RunSettings
from glan.plan import resolve
from tests.helpers import build_args, glan

ONE, TWO = ("Organic Chemistry",), ("Organic Chemistry", "Linear Algebra")


def build(server, tmp, disciplines) -> tuple[int, list[str]]:
    server.reset()
    code, _, err = glan(*build_args(server, tmp / "dist", tmp / ".glan", disciplines=",".join(disciplines)))
    return code, err.splitlines()


def planned(server, tmp, disciplines) -> dict[str, float]:
    run = resolve(RunSettings(preset="smoke", disciplines=disciplines, model="test-model", base_url=server.base_url,
                              work_dir=str(tmp / ".glan")))
    return run.expected_requests(whole=True)


def test_the_plan_line_counts_the_disciplines_not_built_yet_and_the_summary_names_the_folder(
        openai_server, tmp_path):
    code, err = build(openai_server, tmp_path, ONE)
    assert code == 0
    one = planned(openai_server, tmp_path, ONE)
    assert err[0].startswith(f"glan: about to make up to {sum(one.values()):,.0f} requests for 1 discipline (")
    assert err[-1] == f"the dataset folder: {(tmp_path / 'dist').absolute()}"

    # A rebuild that changes nothing: nothing to request, and it says so rather than an upper bound.
    code, err = build(openai_server, tmp_path, ONE)
    assert code == 0 and openai_server.stats()["requests"] == 0
    assert err[0] == "glan: nothing to request: the discipline is built already with these settings."
    assert "1 of 1 discipline was already built with these settings: not run again." in err

    # A superset: only the discipline not built yet counts.
    code, err = build(openai_server, tmp_path, TWO)
    assert code == 0
    half = {stage: count / 2 for stage, count in planned(openai_server, tmp_path, TWO).items()}
    assert err[0].startswith(f"glan: about to make up to {sum(half.values()):,.0f} requests for 1 of 2 disciplines "
                             f"not built yet (subjects {half['subjects']:,.0f}, syllabi ~")
    assert abs(openai_server.stats()["requests"] - sum(half.values())) <= 0.2 * sum(half.values())

    code, err = build(openai_server, tmp_path, TWO)
    assert err[0] == "glan: nothing to request: all 2 disciplines are built already with these settings."


def test_taxonomy_validate_counts_in_the_right_number(tmp_path):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("version: 1.0.0\nfields:\n  - name: Mathematics\n    subfields:\n      - name: Algebra\n"
                        "        disciplines:\n          - name: Linear Algebra\n            description: Vectors.\n")
    code, out, _ = glan("taxonomy", "validate", taxonomy)
    assert code == 0, out
    assert out.startswith(f"{taxonomy}: version 1.0.0, 1 field, 1 sub-field, 1 discipline, presets: ")
