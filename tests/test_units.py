"""Each discipline is a unit of work: built once per fingerprint, skipped after, resumed per request when
stopped, several in flight sharing an endpoint's limits, and read back by glan_dataset.Glan in batches."""

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset

from glan.cli import main
from tests.cached import cache_files
from tests.servers import REPO_ROOT, most_in_flight, start_openai_server

DISCIPLINES = ("Organic Chemistry", "Linear Algebra", "Genetics")


def project(tmp: Path) -> Path:
    """A copy of the shipped taxonomy and prompts, to edit."""
    shutil.copytree(REPO_ROOT / "prompts", tmp / "prompts")
    shutil.copy(REPO_ROOT / "taxonomy.yaml", tmp / "taxonomy.yaml")
    return tmp / "taxonomy.yaml"


def build(server, taxonomy, run_dir, *extra, disciplines=DISCIPLINES):
    return main(["build", "--taxonomy", str(taxonomy), "--preset", "smoke", "--disciplines", ",".join(disciplines),
                 "--model", "test-model", "--base-url", server.base_url, "--out", str(run_dir / "dist"),
                 "--work-dir", str(run_dir / ".glan"), *extra])


def folder_files(out: Path) -> dict[str, bytes]:
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted(out.rglob("*.parquet"))}


def unit_dirs(work: Path) -> dict[str, tuple[str, int]]:
    """discipline_id -> (fingerprint, inode of its unit.json): unchanged when the unit was not written again."""
    return {path.parent.parent.name: (path.parent.name, path.stat().st_ino)
            for path in (work / "units").glob("*/*/unit.json")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("units")
    taxonomy = project(tmp)
    with start_openai_server() as server:
        assert build(server, taxonomy, tmp / "run") == 0
        yield {"server": server, "taxonomy": taxonomy, "run": tmp / "run", "requests": server.stats()["requests"],
               "tmp": tmp}


def test_a_complete_unit_is_not_touched_again_not_even_its_cache(built, tmp_path):
    """Rebuilding with the responses gone (no cache file at all) still gives the same folder, with no request:
    complete units are read from their files, never replayed from the cache."""
    run = tmp_path / "run"
    shutil.copytree(built["run"], run)
    for cache in [*cache_files(run / ".glan"), *(run / ".glan").rglob("*.sqlite-*")]:
        cache.unlink()
    server = built["server"]
    server.reset()
    assert build(server, built["taxonomy"], run) == 0
    assert server.stats()["requests"] == 0
    assert folder_files(run / "dist") == folder_files(built["run"] / "dist")


def test_editing_one_discipline_rebuilds_only_that_unit(built, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(built["run"], run, copy_function=shutil.copy2)
    before, files_before = unit_dirs(run / ".glan"), folder_files(run / "dist")
    taxonomy = project(tmp_path / "edited")
    text = taxonomy.read_text()
    old = "          - name: Genetics\n            description: "
    assert old in text
    taxonomy.write_text(text.replace(old, old + "Heredity, genes and (edited) "))
    server = built["server"]
    server.reset()
    assert build(server, taxonomy, run) == 0

    after = unit_dirs(run / ".glan")
    assert after["genetics"][0] != before["genetics"][0]  # a new fingerprint, a new unit
    assert {key: after[key] for key in ("organic-chemistry", "linear-algebra")} == \
        {key: before[key] for key in ("organic-chemistry", "linear-algebra")}  # not written again
    genetics_alone = tmp_path / "alone"
    with start_openai_server() as alone:
        assert build(alone, taxonomy, genetics_alone, disciplines=("Genetics",)) == 0
        assert server.stats()["requests"] == alone.stats()["requests"]  # exactly the edited discipline's
    files_after = folder_files(run / "dist")
    changed = {name for name in files_after if files_after[name] != files_before.get(name)}
    assert changed and all("genetics" in name or name.startswith("taxonomy/") for name in changed)


def test_a_stopped_unit_resumes_per_request_and_pays_nothing_twice(built, tmp_path):
    server = built["server"]
    server.reset()
    assert build(server, built["taxonomy"], tmp_path, "--max-requests", "30") == 1
    first = [record["body_sha256"] for record in server.log()]
    assert len(first) == 30
    server.reset()
    assert build(server, built["taxonomy"], tmp_path) == 0
    second = [record["body_sha256"] for record in server.log()]
    assert not set(first) & set(second)
    assert len(first) + len(second) == built["requests"]
    assert folder_files(tmp_path / "dist") == folder_files(built["run"] / "dist")


def test_disciplines_run_side_by_side_within_the_endpoint_concurrency(tmp_path):
    """A unit can send nothing but its 2 subject requests before the first answer; the server sees 4
    requests before its first answer only because two units run at once, and never more than 4 in flight."""
    taxonomy = project(tmp_path)
    with start_openai_server(latency_ms=50) as server:
        assert build(server, taxonomy, tmp_path / "run", "--concurrency", "4") == 0
        log = server.log()
    first_answer = min(record["responded"] for record in log)
    assert len([record for record in log if record["received"] < first_answer]) == 4
    assert most_in_flight(log) == 4


def test_the_builder_streams_unit_files_in_record_batches(built, tmp_path):
    from glan_dataset import Glan

    builder = Glan(config_name="instructions", taxonomy=str(built["taxonomy"]), preset="smoke",
                   disciplines=DISCIPLINES, model="test-model", base_url=built["server"].base_url,
                   work_dir=str(built["run"] / ".glan"), progress=False, cache_dir=str(tmp_path / "datasets"))
    generators = builder._split_generators(None)
    files = {generator.name: generator.gen_kwargs["files"] for generator in generators}
    assert set(files) == {"train", "test"} and len(files["train"]) == len(DISCIPLINES)
    tables = list(builder._generate_tables(files["train"]))
    file_rows = [pq.ParquetFile(path).metadata.num_rows for path in files["train"]]
    assert [table.num_rows for _, table in tables] == file_rows  # one batch per file here: nothing concatenated
    streamed = builder.as_streaming_dataset(split="train")
    assert [row["question_id"] for row in streamed] == \
        [row["question_id"] for row in load_dataset(str(built["run"] / "dist"), "instructions", split="train")]


def test_removing_a_preset_setting_that_decides_no_rows_keeps_every_unit(built, tmp_path):
    """Limits, prices and endpoints decide how requests travel, not what they return: changing them
    rebuilds nothing."""
    run = tmp_path / "run"
    shutil.copytree(built["run"], run, copy_function=shutil.copy2)
    before = unit_dirs(run / ".glan")
    taxonomy = project(tmp_path / "edited")
    data = yaml.safe_load(taxonomy.read_text())
    data["presets"]["smoke"]["limits"] = {"concurrency": 3, "timeout_s": 30, "max_retries": 2}
    data["generation"]["prices"] = {"test-model": {"input_per_million": 1, "output_per_million": 2}}
    taxonomy.write_text(yaml.safe_dump(data, sort_keys=False))
    server = built["server"]
    server.reset()
    assert build(server, taxonomy, run) == 0
    assert server.stats()["requests"] == 0
    assert unit_dirs(run / ".glan") == before
