"""GLAN-Test held out across disciplines: the test questions of a discipline that have a near-duplicate in another
discipline's train split.

Dedup sees one discipline at a time (a discipline added later never drops a row of another), so a test question can
have a near-twin in another discipline's train split, and a model trained on the whole train split would have seen
it. The policy: nothing is dropped for it (every discipline's rows stay as they are whatever other disciplines are
built), and stats.json and the card name each such test question with its twins, so that an evaluation can leave
them out.

Near-duplicate means what it means to dedup (builder/quality/dedup.py), at the run's dedup settings: the same
MinHash LSH bands propose candidates, and the Jaccard similarity of the two shingle sets at `threshold` or above
decides. Each unit keeps, in a small file of its own (`near_twin_figures`, a row group per split), the LSH band keys
and shingle hashes of its instructions' questions, about 250 bytes a question; the build reads the test figures of
every unit (50 questions a discipline), then one unit's train figures at a time, so no row is read back and memory
holds one unit's figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import UserError
from .dedup import Fingerprints, Reread, bands_and_rows, fingerprint
from .slices import run_to_end

# Bump when how twins are found or what remembered_twins' memo holds changes: a memo of another format is not read.
MEMO_FORMAT = 1

SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("split", pa.string()),
        ("band_keys", pa.list_(pa.uint64())),
        ("shingles", pa.list_(pa.uint32())),
    ]
)


class FiguresDamaged(UserError):
    """A unit's near-twin figures file that is not what write_near_twin_figures wrote; str(e) names it and what to
    do."""

    def __init__(self, path: Path, why: str):
        super().__init__(
            f"{path}: not the near-duplicate figures glan writes ({why}). Delete its unit folder {path.parent} and "
            "build again: the unit is made again from the cache."
        )


def near_twin_figures(
    questions: dict[str, Reread[tuple[str, str]]], *, threshold: float, num_perm: int, shingle_words: int
) -> pa.Table:
    """split -> (question_id, question) as a table of each question's LSH band keys and sorted shingle hashes. A
    split's pairs are read twice and never held (a unit's are read from its spilled rows, a chunk at a time)."""
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    bands = bands_and_rows(threshold, num_perm)
    for split, pairs in questions.items():
        found = run_to_end(fingerprint(_QuestionRows(pairs), shingle_words, num_perm, *bands))
        offsets = found.shingle_offsets
        for index, (question_id, _) in enumerate(pairs):
            columns["question_id"].append(question_id)
            columns["split"].append(split)
            columns["band_keys"].append(found.band_keys[index])
            columns["shingles"].append(found.shingle_hashes[offsets[index] : offsets[index + 1]])
    return pa.table(columns, schema=SCHEMA)


class _QuestionRows:
    """(question_id, question) pairs as the rows dedup's fingerprint reads."""

    def __init__(self, pairs: Reread[tuple[str, str]]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[dict]:
        return ({"question": text} for _, text in self.pairs)


def write_near_twin_figures(figures: pa.Table, path: Path) -> None:
    """`figures` (near_twin_figures': each split's rows together) as a parquet file with a row group per split, so that
    reading one split's (_read: the test questions of every unit, then one unit's train questions at a time) skips
    the other's."""
    with pq.ParquetWriter(path, SCHEMA) as writer:
        start = 0
        for _, rows in groupby(figures.column("split").to_pylist()):
            count = len(list(rows))
            writer.write_table(figures.slice(start, count))
            start += count


def _fingerprints(table: pa.Table) -> Fingerprints:
    """A figures table as dedup's Fingerprints, row for row: its band keys and shingle hashes (the figures keep no
    digests of the texts: exact duplicates are dedup's, within a discipline)."""
    keys = table.column("band_keys").combine_chunks()
    shingles = table.column("shingles").combine_chunks()
    offsets = shingles.offsets.to_numpy()
    band_keys = keys.flatten().to_numpy().reshape(len(table), -1)
    return Fingerprints([], band_keys, shingles.flatten().to_numpy(), offsets - offsets[0])


def _read(path: Path, split: str) -> pa.Table:
    """`split`'s rows of a unit's figures file, as write_near_twin_figures wrote them: the work dir may come from
    elsewhere or be damaged, so a file of other columns or types, with nulls or rows of different band counts is a
    FiguresDamaged, not a crash later."""
    try:
        schema = pq.read_schema(path)
        if not schema.equals(SCHEMA):
            raise FiguresDamaged(path, "columns " + ", ".join(f"{field.name} {field.type}" for field in schema))
        table = pq.read_table(path, filters=[("split", "=", split)], schema=SCHEMA)
    except (OSError, pa.ArrowException) as error:
        raise FiguresDamaged(path, _first_line(error)) from None
    columns = [table.column(name).combine_chunks() for name in SCHEMA.names]
    if any(column.null_count for column in columns) or any(column.flatten().null_count for column in columns[2:]):
        raise FiguresDamaged(path, "a null value")
    if len(pc.unique(pc.list_value_length(columns[2]))) > 1:
        raise FiguresDamaged(path, "rows of different band counts")
    return table


def _band_count(table: pa.Table) -> int:
    """The band keys of each row of a non-empty table _read (every row has as many)."""
    return len(table.column("band_keys")[0])


def _check_bands(path: Path, table: pa.Table, bands: int) -> None:
    """The units of a run share dedup's settings, so their figures have as many band keys a row."""
    if (found := _band_count(table)) != bands:
        raise FiguresDamaged(path, f"{found} band keys a row where the other units' figures have {bands}")


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def cross_discipline_twins(
    units: Iterable[tuple[str, Path]], threshold: float
) -> dict[str, dict[str, list[dict[str, str]]]]:
    """discipline_id -> test question_id -> its near-twins in other disciplines' train splits, each
    {"discipline_id", "question_id"}: per other discipline, the twin of lowest question_id. `units` are
    (discipline_id, its near-twin figures file); disciplines and questions in id order.

    Per other discipline, a test question is compared in one numpy pass (dedup's Fingerprints.jaccards) with all
    the train questions that share a band's key with it. There are a few test questions a discipline, so the work
    is linear in the train questions however alike they are, and no candidate needs leaving out (dedup compares
    every question of a discipline with the others, and bounds their candidates: BUCKET_CAP)."""
    units = sorted(units)
    read = [(discipline_id, path, table) for discipline_id, path in units if len(table := _read(path, "test"))]
    if not read:
        return {}
    bands = _band_count(read[0][2])
    for _, path, table in read:
        _check_bands(path, table, bands)
    tests = [(discipline_id, table) for discipline_id, _, table in read]
    test = pa.concat_tables([table for _, table in tests])
    test_ids: list[str] = test.column("question_id").to_pylist()
    owners = [discipline_id for discipline_id, table in tests for _ in range(len(table))]
    owned_by = np.array(owners)
    twins: dict[tuple[int, str], str] = {}  # (test question, other discipline) -> the twin's question_id
    for discipline_id, path in units:
        if not len(train := _read(path, "train")):
            continue
        _check_bands(path, train, bands)
        both = _fingerprints(pa.concat_tables([test, train]))  # the test questions, then this discipline's train ones
        train_ids = train.column("question_id").to_numpy(zero_copy_only=False)
        ranks = None  # of the train questions by question_id, once a twin is found
        for test_index, candidates in _candidates(both.band_keys, len(test_ids), owned_by != discipline_id):
            similar = candidates[both.jaccards(test_index, candidates) >= threshold] - len(test_ids)
            if similar.size:
                if ranks is None:
                    ranks = np.argsort(np.argsort(train_ids, kind="stable"), kind="stable")
                twins[test_index, discipline_id] = train_ids[similar[ranks[similar].argmin()]]
    found: dict[str, dict[str, list[dict[str, str]]]] = {}
    for (test_index, other), question_id in sorted(twins.items(), key=lambda item: (test_ids[item[0][0]], item[0][1])):
        found.setdefault(owners[test_index], {}).setdefault(test_ids[test_index], []).append(
            {"discipline_id": other, "question_id": question_id}
        )
    return {discipline_id: found[discipline_id] for discipline_id in sorted(found)}


def remembered_twins(units: list[tuple[str, Path]], threshold: float, memo: Path) -> dict:
    """`cross_discipline_twins`, remembered in `memo` (a file in the work dir) for the same figures files: a rebuild
    that changes no unit reads that one file instead of every unit's figures (0.08 s of CPU a unit of 45,000
    questions, quality_bench's held-out scenario). A unit's files never change in place (a rebuilt unit writes new
    ones), so their names, sizes and times identify them, with MEMO_FORMAT. The memo is a cache: one that does not
    match, cannot be read or does not hold twins is computed again, and one that cannot be written is left for the
    next build to compute."""
    files = []
    for discipline_id, path in units:
        stat = path.stat()
        files.append((discipline_id, str(path), stat.st_size, stat.st_mtime_ns))
    key = hashlib.sha256(json.dumps([MEMO_FORMAT, threshold, sorted(files)]).encode()).hexdigest()
    remembered = None
    # Only the work dir's own file: not a link's target, not a FIFO whose read would wait forever.
    if memo.is_file() and not memo.is_symlink():
        with contextlib.suppress(OSError, ValueError):
            remembered = json.loads(memo.read_text())
    if isinstance(remembered, dict) and remembered.get("key") == key and _are_twins(remembered.get("twins")):
        return remembered["twins"]
    twins = cross_discipline_twins(units, threshold)
    partial = None
    try:
        # A fresh file (O_EXCL: never through a link planted in the work dir), then renamed over the memo (which
        # replaces a link there, not its target).
        handle, name = tempfile.mkstemp(prefix=f"{memo.name}.", suffix=".partial", dir=memo.parent)
        partial = Path(name)
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps({"key": key, "twins": twins}))
        os.replace(partial, memo)
    except OSError:
        if partial is not None:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
    return twins


def _are_twins(twins: object) -> bool:
    """Whether `twins` is what cross_discipline_twins returns: discipline_id -> test question_id -> a list of its
    twins, each {"discipline_id", "question_id"}, strings (no discipline or question without one)."""
    return isinstance(twins, dict) and all(
        isinstance(tests, dict)
        and tests
        and all(
            isinstance(found, list)
            and found
            and all(
                isinstance(twin, dict)
                and twin.keys() == {"discipline_id", "question_id"}
                and all(isinstance(value, str) for value in twin.values())
                for twin in found
            )
            for found in tests.values()
        )
        for tests in twins.values()
    )


def _candidates(band_keys: np.ndarray, tests: int, asked: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """What LSH proposes, before Jaccard decides: for each of the first `tests` rows of `band_keys` (test questions)
    that is `asked`, the rows after them (train questions) that have its key in a band, as sorted row indexes."""
    found: dict[int, list[np.ndarray]] = {}
    for band in range(band_keys.shape[1]):
        order = np.argsort(band_keys[tests:, band]) + tests
        ordered = band_keys[order, band]
        left = np.searchsorted(ordered, band_keys[:tests, band], "left")
        right = np.searchsorted(ordered, band_keys[:tests, band], "right")
        for test_index in np.flatnonzero((right > left) & asked).tolist():
            found.setdefault(test_index, []).append(order[left[test_index] : right[test_index]])
    for test_index, parts in sorted(found.items()):
        yield test_index, np.unique(np.concatenate(parts))
