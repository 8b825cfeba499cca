"""Numbers a pulled taxonomy, a flag or a Python caller gives glan's settings: infinity and NaN are refused like
any value out of range. A price of .inf made every cost NaN, which no budget (--max-cost) and no confirmation
threshold ever compares above: the build sent everything without a word."""

import pytest
import yaml

import glan
from tests.helpers import REPO, glan as run_glan, project
from tests.servers import start_openai_server

FLAGS = ("--preset", "smoke", "--disciplines", "Organic Chemistry", "--model", "test-model")


def test_an_infinite_price_in_a_taxonomy_is_refused_with_its_line(tmp_path):
    taxonomy = project(tmp_path / "project")
    data = yaml.safe_load(taxonomy.read_text())
    data["generation"]["prices"]["test-model"] = {"input_per_million": float("inf"), "output_per_million": 10.0}
    taxonomy.write_text(yaml.safe_dump(data, sort_keys=False))
    line = next(number for number, text in enumerate(taxonomy.read_text().splitlines(), 1) if ".inf" in text)
    with start_openai_server() as server:
        code, _, err = run_glan("build", "--taxonomy", taxonomy, *FLAGS, "--base-url", server.base_url,
                                "--max-cost", "0.001", "--work-dir", tmp_path / ".glan", "--out", tmp_path / "dist")
        assert server.stats()["requests"] == 0
    assert (code, err) == (2, f"glan: {taxonomy}:{line}: generation.prices.test-model.input_per_million: Input should "
                              "be a finite number. Compare with the taxonomy.yaml that `glan init` writes.\n")


@pytest.mark.parametrize("price", ["inf,1", "nan,1", "1,-2"])
def test_a_price_flag_that_is_not_a_finite_number_of_at_least_0_is_refused(price, tmp_path):
    with pytest.raises(SystemExit) as exit:
        glan.cli.main(["estimate", *FLAGS, "--price", f"test-model={price}", "--work-dir", str(tmp_path)])
    assert exit.value.code == 2


@pytest.mark.parametrize("price", [(float("inf"), 1.0), (float("nan"), 1.0), (1.0, -2.0)])
def test_a_price_from_python_that_is_not_a_finite_number_of_at_least_0_is_one_user_error(price, tmp_path):
    with pytest.raises(glan.UserError) as error:
        glan.estimate(REPO / "taxonomy.yaml", preset="smoke", model="m", base_url="http://127.0.0.1:9/v1",
                      prices={"m": price}, work_dir=tmp_path)
    assert str(error.value).startswith("prices= m: ") and str(error.value).endswith("(USD per million tokens).")


@pytest.mark.parametrize("key", ["limits.timeout_s", "limits.dead_after_s", "limits.confirm_above_usd"])
def test_an_infinite_limit_by_set_is_refused(key, tmp_path):
    code, _, err = run_glan("estimate", *FLAGS, "--base-url", "http://127.0.0.1:9/v1", "--set", f"{key}=.inf",
                            "--work-dir", tmp_path)
    assert (code, err) == (2, f"glan: --set: {key}: Input should be a finite number. Compare with the generation "
                              "block of the taxonomy.yaml that `glan init` writes.\n")
