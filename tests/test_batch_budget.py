"""`glan build --batch` as the user is billed: the cost shown is the Batch API's half price of the tokens
the server reported, and --max-requests caps what the submitted batches hold."""

import json
from collections import defaultdict

import pytest
from openai import OpenAI

from tests.helpers import CONFIG_OF_OUTPUT, glan, project
from tests.servers import start_openai_server
from tests.servers.openai_server import output_of

TWO = "Organic Chemistry,Linear Algebra"
PRICE_IN, PRICE_OUT = 1000.0, 3000.0  # USD per million tokens: large enough to show in 4 decimals


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory):
    # The prices are far above any real one: the USD a build may spend without asking is raised to match.
    return project(tmp_path_factory.mktemp("batch"),
                   quick_polls={"limits": {"batch_poll_s": 0.2, "confirm_above_usd": 1_000_000}})


def batch_build(taxonomy, server, tmp_path, *flags):
    return glan("build", "--taxonomy", taxonomy, "--preset", "quick_polls", "--disciplines", TWO, "--model",
                "test-model", "--base-url", server.base_url, "--batch", "--out", tmp_path / "dist",
                "--work-dir", tmp_path / ".glan", *flags)


def server_batches(server) -> list[tuple[list[dict], list[dict]]]:
    """(input lines, output lines) of every batch the server ran, read back with the openai client."""
    api = OpenAI(base_url=server.base_url, api_key="test")

    def lines(file_id):
        return [json.loads(line) for line in api.files.content(file_id).text.splitlines()] if file_id else []

    return [(lines(batch.input_file_id), lines(batch.output_file_id)) for batch in api.batches.list(limit=100)]


def summary_costs(err: str) -> dict[str, float]:
    """config -> the cost column of the build summary's table."""
    lines = err.splitlines()
    header = next(index for index, line in enumerate(lines) if line.rstrip().endswith("cost USD"))
    return {line.split()[0]: float(line.split()[-1]) for line in lines[header + 1:]
            if line.split() and line.split()[0] in CONFIG_OF_OUTPUT.values()}


def test_batch_answers_cost_half_the_price_of_the_tokens_the_server_reported(taxonomy, tmp_path):
    with start_openai_server(batch_delay_s=0.2) as server:
        code, _, err = batch_build(taxonomy, server, tmp_path, "--price", f"test-model={PRICE_IN},{PRICE_OUT}")
        batches = server_batches(server)
        online = server.stats()["requests"]
    assert code == 0, err
    assert online == 0
    tokens = defaultdict(lambda: [0, 0])  # config -> [prompt, completion] tokens billed
    for inputs, outputs in batches:
        config = CONFIG_OF_OUTPUT[output_of(inputs[0]["body"])]
        for line in outputs:
            usage = line["response"]["body"]["usage"]
            tokens[config][0] += usage["prompt_tokens"]
            tokens[config][1] += usage["completion_tokens"]
    shown = summary_costs(err)
    assert set(shown) == set(tokens) == set(CONFIG_OF_OUTPUT.values())
    for config, (prompt, completion) in tokens.items():
        online_price = (prompt * PRICE_IN + completion * PRICE_OUT) / 1e6
        assert shown[config] == pytest.approx(online_price / 2, abs=5e-5), config


def test_max_requests_caps_what_the_batches_hold(taxonomy, tmp_path):
    with start_openai_server(batch_delay_s=0.2) as server:
        code, _, err = batch_build(taxonomy, server, tmp_path, "--max-requests", "5")
        batches = server_batches(server)
        online = server.stats()["requests"]
    assert code == 1
    assert "stopped early: --max-requests 5 reached" in err
    assert online == 0
    assert sum(len(inputs) for inputs, _ in batches) == 5
