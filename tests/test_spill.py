"""A unit's rows go to disk as its stages make them (glan/unit/spill.py): the files it publishes are those glan wrote
when it held every row (pq.write_table of a table made from the rows), whatever the chunk size, and what it holds in
memory does not grow with its questions."""

import io
import random
import shutil
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glan.cli import main
from glan.execute import admission
from glan.quality import stats
from glan.unit import spill
from glan.unit.spill import Spill
from glan.unit.store import UNITS, UnitResult, UnitStore
from tests.helpers import build_args, project
from tests.servers import start_openai_server

WORDS = [f"word{index}" for index in range(3_000)]
ANSWER_CHARS = 50_000


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def instruction(rng: random.Random, index: int) -> dict:
    """An instruction row with a long answer and lists of varying length: pages and dictionaries overflow."""
    concepts = [text(rng, rng.randint(2, 40)) for _ in range(rng.randint(1, 8))]
    return {"messages": [{"role": "user", "content": text(rng, rng.randint(20, 80))},
                         {"role": "assistant", "content": text(rng, rng.randint(100, 600))}],
            "question_id": f"q{index}", "subject_id": f"s{index // 300}", "discipline_id": "d", "field": "f",
            "subfield": "sf", "discipline": "disc", "subject": f"subject {index // 300}", "level": "lvl",
            "strategy": "single_session", "session_indices": list(range(rng.randint(1, 2))),
            "sessions": [text(rng, 3) for _ in range(rng.randint(1, 2))], "key_concepts": concepts,
            "question_model": "m", "model": "m", "prompt_fingerprint": "p",
            "score": rng.choice([None, rng.randint(1, 10)]), "score_reason": None, "judge_model": None}


def parquet_bytes(table: pa.Table) -> bytes:
    written = io.BytesIO()
    pq.write_table(table, written)
    return written.getvalue()


@pytest.mark.parametrize("chunk_rows", [7, 1_000])
def test_a_spill_writes_the_parquet_bytes_of_its_rows_held_at_once(monkeypatch, tmp_path, chunk_rows):
    """5,000 instructions with answers of up to 600 words: the spill's parquet file is byte for byte what glan wrote
    from the rows in memory, and its Arrow bytes are that table's."""
    monkeypatch.setattr(spill, "CHUNK_ROWS", chunk_rows)
    rng = random.Random(0)
    rows = [instruction(rng, index) for index in range(5_000)]
    result = UnitResult(folder=tmp_path)
    spilled = result.spill("instructions")
    spilled.add(rows)
    spilled.close()
    assert len(spilled) == len(rows) and next(iter(spilled)) == rows[0]
    arrow_bytes = spilled.write_parquet(tmp_path / "out.parquet")
    table = pa.Table.from_pylist(rows, schema=spilled.schema)
    assert (tmp_path / "out.parquet").read_bytes() == parquet_bytes(table)
    assert arrow_bytes == table.nbytes
    # Why the spill combines its chunks first: the writer cuts pages where each chunk's batches end.
    chunked = pa.Table.from_batches([pa.RecordBatch.from_pylist(rows[start:start + 1_000], schema=spilled.schema)
                                     for start in range(0, len(rows), 1_000)])
    assert parquet_bytes(chunked) != parquet_bytes(table)


def test_an_estimate_spills_in_memory(tmp_path):
    """No folder (an estimate writes nothing): the same rows, read back a chunk at a time."""
    rows = [instruction(random.Random(1), index) for index in range(3)]
    spilled = Spill(UnitResult().spill("instructions").schema)
    spilled.add(rows)
    assert list(spilled.close()) == rows
    assert spilled.path is None


def folder_bytes(root) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and path.suffix in (".parquet", ".json", ".jsonl")}


def test_a_build_in_chunks_of_three_rows_writes_the_same_files(monkeypatch, tmp_path):
    """The same project, with the judge on (its scores put back in each pair's split), in chunks of 3 rows and of
    CHUNK_ROWS: every unit file and every published file is the same, byte for byte, and no spill is left."""
    taxonomy = project(tmp_path, cmp={"questions": {"per_subject": 12}, "judge": {"enabled": True},
                                      "quality": {"test_split": {"per_discipline": 3}, "min_score": 5,
                                                  "decontamination": {"benchmarks": []}}})
    built = {}
    with start_openai_server() as server:
        for chunk_rows in (3, spill.CHUNK_ROWS):
            monkeypatch.setattr(spill, "CHUNK_ROWS", chunk_rows)
            run = tmp_path / f"chunks{chunk_rows}"
            assert main(build_args(server, run / "dist", run / ".glan", preset="cmp", taxonomy=taxonomy)) == 0
            built[chunk_rows] = {**folder_bytes(run / ".glan" / UNITS), **folder_bytes(run / "dist")}
            assert not list((run / ".glan" / UNITS).rglob(f"*{spill.SPILL_SUFFIX}"))
            assert not list((run / ".glan" / UNITS).glob("*/.staging-*"))
    small, default = built.values()
    assert any(name.endswith("instructions-test.parquet") for name in small)
    assert small == default


def held_at_most(monkeypatch, tmp_path, server, per_subject: int) -> tuple[int, int]:
    """A one-discipline build of `per_subject` questions per subject: the most Python memory its unit took at once,
    from its start until it was written (tracemalloc's peak over what was traced when it started), and the
    instructions it made."""
    taxonomy = project(tmp_path, held={"questions": {"per_subject": per_subject}, "limits": {"concurrency": 2}})
    run = tmp_path / "run"
    started, peaks = [], []
    run_unit, write = admission.run_unit, UnitStore.write

    async def unit(*args):
        tracemalloc.reset_peak()
        started.append(tracemalloc.get_traced_memory()[0])
        return await run_unit(*args)

    def written(store, discipline, result):
        unit = write(store, discipline, result)
        peaks.append(tracemalloc.get_traced_memory()[1])
        return unit

    monkeypatch.setattr(admission, "run_unit", unit)
    monkeypatch.setattr(UnitStore, "write", written)
    tracemalloc.start()
    try:
        assert main(build_args(server, run / "dist", run / ".glan", disciplines="Organic Chemistry", preset="held",
                               taxonomy=taxonomy)) == 0
    finally:
        tracemalloc.stop()
    instructions = sum(pq.ParquetFile(path).metadata.num_rows for path in (run / "dist").glob("instructions/*"))
    shutil.rmtree(run)
    return peaks[0] - started[0], instructions


def test_what_a_unit_holds_does_not_grow_with_its_questions(monkeypatch, tmp_path):
    """Answers of 50,000 characters, 3 and then 30 questions per subject: ten times the rows (megabytes of answers
    more) raise the peak of what the unit held by less than a quarter of the answers' text: the unit holds a chunk
    of 4 rows, its requests in flight and its questions' figures (ids, fingerprints: a few KB a question), not its
    rows. With every row
    held (one chunk of them all) the peak grows by more than the answers' text. (Stats sample a column's first
    NGRAM_ROWS texts, 500, which the test's units do not reach: that sample is cut to a chunk's size here.)"""
    answers = [f"{index} " + "x" * ANSWER_CHARS for index in range(50)]
    monkeypatch.setattr(spill, "CHUNK_ROWS", 4)
    monkeypatch.setattr(stats, "NGRAM_ROWS", 4)  # stats sample a column's first texts: as few as a chunk holds
    with start_openai_server() as server:
        server.configure(answer_pool=answers)
        small_peak, small_rows = held_at_most(monkeypatch, tmp_path / "small", server, 3)
        large_peak, large_rows = held_at_most(monkeypatch, tmp_path / "large", server, 30)
        monkeypatch.setattr(spill, "CHUNK_ROWS", 1_000_000)
        whole_peak, _ = held_at_most(monkeypatch, tmp_path / "whole", server, 30)
    assert large_rows >= 8 * small_rows
    answer_bytes = (large_rows - small_rows) * ANSWER_CHARS
    assert large_peak - small_peak < answer_bytes / 4
    assert whole_peak - large_peak > answer_bytes
