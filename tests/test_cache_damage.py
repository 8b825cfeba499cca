"""A damaged cache file (truncated, overwritten, a page corrupted) stops a build with one line and no
request; `glan cache check` keeps what SQLite can still read and the damaged file aside; the next build
pays exactly for what was lost and writes the same rows."""

import json
import os
import random
import re
import shutil
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from glan.cli import main
from tests.servers import start_openai_server

CONFIGS = ("taxonomy", "subjects", "syllabi", "questions", "instructions")
UNIT_CACHE = "cache/organic-chemistry.sqlite"  # the responses of the one discipline built


def build(server, work: Path, out: Path) -> int:
    return main(["build", "--preset", "smoke", "--disciplines", "Organic Chemistry", "--model", "test-model",
                 "--base-url", server.base_url, "--work-dir", str(work), "--out", str(out)])


def rows(out: Path) -> dict[str, set[str]]:
    return {config: {json.dumps(row, sort_keys=True) for path in sorted((out / config).glob("*.parquet"))
                     for row in pq.read_table(path).to_pylist()} for config in CONFIGS}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("damage")
    with start_openai_server() as server:
        assert build(server, tmp / ".glan", tmp / "dist") == 0
        db = sqlite3.connect(tmp / ".glan" / UNIT_CACHE)
        (responses,) = db.execute("SELECT count(*) FROM responses").fetchone()
        db.close()
        assert responses == server.stats()["requests"]
        server.reset()
        yield {"server": server, "work": tmp / ".glan", "rows": rows(tmp / "dist"), "responses": responses}


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def overwrite(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(path.stat().st_size))


def corrupt_a_page_of_responses(path: Path) -> None:
    """Overwrite the page that holds the middle response with noise."""
    db = sqlite3.connect(path)
    (text,) = db.execute("SELECT text FROM responses ORDER BY rowid LIMIT 1 OFFSET "
                         "(SELECT count(*) / 2 FROM responses)").fetchone()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    data = path.read_bytes()
    page = data.index(text[:200].encode()) // page_size
    with open(path, "r+b") as file:
        file.seek(page * page_size)
        file.write(random.Random(2).randbytes(page_size))


# The unit's files are removed for a damaged unit cache, so that the build replays the unit from it.
DAMAGES = {
    "truncated unit cache": (UNIT_CACHE, truncate, "database disk image is malformed"),
    "overwritten shared cache": ("cache.sqlite", overwrite, "file is not a database"),
    "a corrupted page of a unit cache": (UNIT_CACHE, corrupt_a_page_of_responses, "database disk image is malformed"),
}


@pytest.mark.parametrize("name, damage, problem", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_cache_is_one_line_then_cache_check_keeps_what_can_be_read(name, damage, problem, built, tmp_path,
                                                                              capsys):
    server, work, out = built["server"], tmp_path / ".glan", tmp_path / "dist"
    unit_cache = name == UNIT_CACHE
    shutil.copytree(built["work"], work, ignore=shutil.ignore_patterns(
        "datasets", "lock", "*-wal", "*-shm", *(["units"] if unit_cache else [])))
    cache = work / name
    damage(cache)
    damaged = cache.read_bytes()
    server.reset()

    assert build(server, work, out) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"glan: {cache}: the response cache is damaged ({problem}): the responses in its damaged part cannot be "
        f"read, and a build would pay for them again. Run `glan cache check --work-dir {work}` to keep what can "
        "still be read (the damaged file is kept aside), then run the same command again.")
    assert server.stats()["requests"] == 0 and not out.exists()

    assert main(["cache", "check", "--work-dir", str(work)]) == 1
    report = capsys.readouterr().out
    (kept_as,) = [path for path in cache.parent.iterdir()
                  if re.fullmatch(rf"{cache.name}\.damaged-\d{{8}}T\d{{6}}", path.name)]
    assert kept_as.read_bytes() == damaged
    if damage is corrupt_a_page_of_responses:
        kept, lost = map(int, re.search(r"\n  responses: (\d+) rows kept, (\d+) lost\n", report).groups())
        assert kept + lost == built["responses"] and 0 < lost < built["responses"]
    else:
        lost = built["responses"] if unit_cache else 0  # the shared cache holds no response of this build
        assert "\n  nothing could be read: the cache starts empty\n" in report
    assert report.startswith(f"{cache}: damaged: {problem}\n")
    assert report.endswith(f"  the damaged file is kept as {kept_as}; {cache} now holds what could be read\n"
                           f"{work}: 2 cache files, 1 damaged. Run the build again: it sends the requests whose "
                           "responses were lost.\n")

    assert build(server, work, out) == 0
    assert server.stats()["requests"] == lost
    assert rows(out) == built["rows"]
    assert main(["cache", "check", "--work-dir", str(work)]) == 0
    assert capsys.readouterr().out.endswith(
        f"{work}: 2 cache files, no damage found by SQLite's integrity check, every response readable.\n")


def test_cache_check_without_a_cache_says_where_it_looked(tmp_path, capsys):
    assert main(["cache", "check", "--work-dir", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == (f"glan: {tmp_path / 'nowhere'}: no cache here (cache.sqlite, cache/*.sqlite). "
                                       "Pass the --work-dir of a build (the default is .glan).\n")
    assert not (tmp_path / "nowhere").exists()
