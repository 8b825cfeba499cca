"""The shipped benchmark list read from the Hub test server with the unmodified `datasets` client.

The server holds small copies of the seven benchmarks under their real ids and pinned revisions, parquet only
(tests/servers/hub_datasets.py): each config the taxonomy names, each split it names plus one it does not, each
text column it names plus one it does not, two rows each, every text a run of words no other text shares. A
benchmark read as configured matches exactly the texts of its named configs, splits and columns.

datasets and huggingface_hub read HF_ENDPOINT and HF_HUB_OFFLINE when imported, so each step runs in a fresh
interpreter (this file run as a script), as in test_hub.py; the server runs in this process, in a thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tests.helpers import PATIENCE_S, PRESETS, project, words

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARKER = "@@glan-test-result@@"
SHIPPED = yaml.safe_load((ROOT / "taxonomy.yaml").read_text())["generation"]["quality"]["decontamination"]
DEFAULTS = SHIPPED["benchmarks"]
UNLISTED_SPLIT, UNLISTED_COLUMN, ROWS = "unlisted", "unlisted_text", 2
WHERE = "generation.quality.decontamination.benchmarks"


def texts_of(benchmark: dict, config: str, split: str, column: str) -> list[str]:
    """Fifteen words found nowhere else per row, from the text's place in its benchmark."""
    return [words(benchmark["name"], config, split, column, row, count=15) for row in range(ROWS)]


def benchmark_copy(benchmark: dict) -> dict[str, dict[str, pa.Table]]:
    columns = benchmark["text_columns"] + [UNLISTED_COLUMN]
    return {config: {split: pa.table({"id": list(range(ROWS)),
                                      **{column: texts_of(benchmark, config, split, column) for column in columns}})
                     for split in benchmark["splits"] + [UNLISTED_SPLIT]}
            for config in benchmark["configs"]}


def expected_texts(benchmark: dict, listed: bool) -> list[str]:
    """The texts of the named configs, splits and columns, or (listed=False) of those in the copy but not named."""
    return [text for config, splits in benchmark_copy(benchmark).items() for split, table in splits.items()
            for column in table.column_names if column != "id"
            if ((split in benchmark["splits"] and column in benchmark["text_columns"]) == listed)
            for text in table.column(column).to_pylist()]


@pytest.fixture(scope="module")
def hub():
    from tests.servers.hub_datasets import parquet_repo, publish
    from tests.servers.hub_server import start_hub_server

    handle = start_hub_server()
    for benchmark in DEFAULTS:
        publish(handle, benchmark["dataset"], benchmark["revision"], parquet_repo(benchmark_copy(benchmark)))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """One Hugging Face cache for the module: the first test fills it, the offline tests read it."""
    return tmp_path_factory.mktemp("hf-home")


def child(hub, hf_home: Path, *steps: dict, **env: str) -> list:
    """Run the steps in one fresh interpreter pointed at the test server and its Hugging Face cache."""
    environment = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    proc = subprocess.run([sys.executable, __file__, json.dumps(steps)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=PATIENCE_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.split(RESULT_MARKER, 1)[1])


def load(*benchmarks: dict) -> dict:
    """load_benchmarks over these entries; the result names, per entry, which texts of all the copies it matches."""
    return {"op": "load", "benchmarks": list(benchmarks)}


def test_each_shipped_benchmark_loads_its_configs_splits_and_columns_and_nothing_else(hub, hf_home):
    start = len(hub.state.requests)
    [result] = child(hub, hf_home, load(*DEFAULTS))

    assert result["error"] is None
    for benchmark, loaded in zip(DEFAULTS, result["indexes"], strict=True):
        listed = expected_texts(benchmark, listed=True)
        assert loaded["name"] == benchmark["name"]
        assert loaded["items"] == len(listed) == (len(benchmark["configs"]) * len(benchmark["splits"]) * ROWS
                                                  * len(benchmark["text_columns"]))
        assert sorted(loaded["matched"]) == sorted(listed), benchmark["name"]
    # Every file was read at its pinned revision, and the copy of each listed config was downloaded.
    paths = [path for method, path in hub.state.requests[start:] if "/resolve/" in path]
    for benchmark in DEFAULTS:
        for config in benchmark["configs"]:
            assert (f"/datasets/{benchmark['dataset']}/resolve/{benchmark['revision']}/{config}/"
                    f"{benchmark['splits'][0]}-00000-of-00001.parquet") in paths
    assert all(any(f"/resolve/{benchmark['revision']}/" in path for benchmark in DEFAULTS) for path in paths)


def test_with_hf_hub_offline_a_warm_cache_loads_and_a_cold_one_is_one_line(hub, hf_home, tmp_path):
    child(hub, hf_home, load(DEFAULTS[0]))  # warm for gsm8k, whichever test ran first
    start = len(hub.state.requests)
    warm, elsewhere = child(hub, hf_home, load(DEFAULTS[0]), load({**DEFAULTS[0], "revision": "1" * 40}),
                            HF_HUB_OFFLINE="1")
    [cold] = child(hub, tmp_path / "cold-hf-home", load(DEFAULTS[0]), HF_HUB_OFFLINE="1")

    assert len(hub.state.requests) == start  # offline means no request at all
    assert warm["error"] is None
    assert sorted(warm["indexes"][0]["matched"]) == sorted(expected_texts(DEFAULTS[0], listed=True))
    gsm8k = DEFAULTS[0]
    fetch = (f"python -c \"import datasets; datasets.load_dataset('openai/gsm8k', 'main', "
             f"revision='{gsm8k['revision']}')\"")
    assert cold["error"] == (
        f'benchmark "gsm8k" (openai/gsm8k at {gsm8k["revision"][:12]}, config main): HF_HUB_OFFLINE is set and it is '
        f"not in the Hugging Face cache. Either pre-fetch it where the Hub is reachable ({fetch} fills the Hugging "
        'Face cache under HF_HOME; copy that folder here) or point the entry at a local copy (path: FILE), or remove '
        f'"gsm8k" from {WHERE}.')
    assert elsewhere["error"].startswith(
        f'benchmark "gsm8k" (openai/gsm8k at 111111111111, config main): HF_HUB_OFFLINE is set and the Hugging Face '
        f"cache holds revision {gsm8k['revision']}, not this one. Either pre-fetch it")


def test_a_benchmark_the_hub_lacks_or_misnames_is_one_line(hub, hf_home):
    gsm8k = DEFAULTS[0]
    missing, no_revision, no_config, no_split, no_column, not_text = child(
        hub, hf_home,
        load({**gsm8k, "name": "private-set", "dataset": "nobody/private-set"}),
        load({**gsm8k, "revision": "0" * 40}),
        load({**gsm8k, "configs": ["socratic"]}),
        load({**gsm8k, "splits": ["train", "validation"]}),
        load({**gsm8k, "text_columns": ["question", "solution"]}),
        load({**gsm8k, "text_columns": ["id"]}))  # the copy's id column: int64

    assert missing["error"] == (
        f'benchmark "private-set" (nobody/private-set at {gsm8k["revision"][:12]}, config main): not found on the Hub '
        "(Dataset 'nobody/private-set' doesn't exist on the Hub or cannot be accessed.). Either pre-fetch it where "
        "the Hub is reachable (python -c \"import datasets; datasets.load_dataset('nobody/private-set', 'main', "
        f"revision='{gsm8k['revision']}')\" fills the Hugging Face cache under HF_HOME; copy that folder here) or "
        f'point the entry at a local copy (path: FILE), or remove "private-set" from {WHERE}.')
    assert no_revision["error"].startswith(
        "benchmark \"gsm8k\" (openai/gsm8k at 000000000000, config main): not found on the Hub (Revision "
        f"'{'0' * 40}' doesn't exist for dataset 'openai/gsm8k' on the Hub.). Either pre-fetch it")
    assert no_config["error"] == (
        f'benchmark "gsm8k" (openai/gsm8k at {gsm8k["revision"][:12]}, config socratic): no config \'socratic\' '
        "(BuilderConfig 'socratic' not found. Available: ['main']). Fix its \"configs\", or remove \"gsm8k\" from "
        f"{WHERE}.")
    assert no_split["error"] == (
        f'benchmark "gsm8k" (openai/gsm8k at {gsm8k["revision"][:12]}, config main, split validation): no split '
        f"'validation' (splits: train, test, {UNLISTED_SPLIT}). Fix its \"splits\", or remove \"gsm8k\" from {WHERE}.")
    assert no_column["error"] == (
        f'benchmark "gsm8k" (openai/gsm8k at {gsm8k["revision"][:12]}, config main, split train): no column '
        f"'solution' (columns: id, question, answer, {UNLISTED_COLUMN}). Fix its \"text_columns\", or remove \"gsm8k\" "
        f"from {WHERE}.")
    assert not_text["error"] == (
        f'benchmark "gsm8k" (openai/gsm8k at {gsm8k["revision"][:12]}, config main, split train): column \'id\' holds '
        f'int64, not text. Fix its "text_columns", or remove "gsm8k" from {WHERE}.')


def test_an_unreachable_hub_is_one_line_at_once_and_the_build_stops_before_any_request(hub, tmp_path):
    from tests.servers import start_openai_server

    paper = {**PRESETS["paper"], "quality": {"test_split": {"per_discipline": 1}}}
    taxonomy = project(tmp_path / "project", paper=paper)
    with start_openai_server() as server:
        unreachable, build = child(
            hub, tmp_path / "hf-home", load(*DEFAULTS),
            {"op": "glan", "argv": ["build", "--taxonomy", str(taxonomy), "--preset", "paper", "--disciplines",
                                    "Ethics", "--base-url", server.base_url, "--out", str(tmp_path / "dist"),
                                    "--work-dir", str(tmp_path / ".glan")]},
            HF_ENDPOINT="http://127.0.0.1:9")  # the discard port: nothing listens
        sent = server.stats()["requests"]

    names = ", ".join(f'"{benchmark["name"]}"' for benchmark in DEFAULTS)
    line = (f"benchmarks {names}: the Hugging Face Hub (http://127.0.0.1:9) cannot be reached (ConnectError: [Errno "
            "111] Connection refused). Either set HF_HUB_OFFLINE=1 to read them from the Hugging Face cache (pre-fetch "
            "them where the Hub is reachable: docs/decontamination.md) or point each at a local copy (path: FILE), or "
            f"remove them from {WHERE}.")
    assert unreachable["error"] == line
    assert build["exit"] == 2 and build["err"] == f"glan: {line}\n"
    assert sent == 0
    assert not (tmp_path / "dist").exists()


# -- the child interpreter ------------------------------------------------------------------------------------


def _child_load(benchmarks: list[dict]) -> dict:
    from glan.config.settings import Decontamination
    from glan.quality import BenchmarkError, load_benchmarks
    from glan.quality.decontaminate import contaminated

    probes = [text for benchmark in DEFAULTS for listed in (True, False) for text in expected_texts(benchmark, listed)]
    try:
        indexes = load_benchmarks(Decontamination(benchmarks=benchmarks))
    except BenchmarkError as error:
        return {"error": str(error), "indexes": []}
    return {"error": None, "indexes": [
        {"name": index.name, "items": index.items,
         "matched": [probes[pair] for pair in contaminated([{"question": text} for text in probes], [index])]}
        for index in indexes]}


def _child_glan(argv: list[str]) -> dict:
    from glan.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return {"exit": code, "out": out.getvalue(), "err": err.getvalue()}


def _child(steps: list[dict]) -> None:
    assert os.environ.get("HF_ENDPOINT", "").startswith("http://127.0.0.1:"), "run through child()"
    results = [_child_glan(step["argv"]) if step["op"] == "glan" else _child_load(step["benchmarks"]) for step in steps]
    print(RESULT_MARKER + json.dumps(results))


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
