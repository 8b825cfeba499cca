"""GLAN-Test held out across disciplines: the test questions of a discipline that have a near-duplicate in another
discipline's train split.

Dedup sees one discipline at a time (a discipline added later never drops a row of another), so a test question can
have a near-twin in another discipline's train split, and a model trained on the whole train split would have seen
it. The policy: nothing is dropped for it (every discipline's rows stay as they are whatever other disciplines are
built), and stats.json and the card name each such test question with its twins, so that an evaluation can leave
them out.

Near-duplicate means what it means to dedup (builder/quality/dedup.py), at the run's dedup settings: the same
MinHash LSH bands propose candidates, and the Jaccard similarity of the two shingle sets at `threshold` or above
decides. Each unit keeps, in a small file of its own (`near_twin_figures`), the LSH band keys and shingle hashes of
its instructions' questions, about 250 bytes a question; the build reads the test figures of every unit (50 questions
a discipline), then one unit's train figures at a time, so no row is read back and memory holds one unit's figures.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .dedup import bands_and_rows, fingerprint
from .slices import run_to_end

SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("split", pa.string()),
        ("band_keys", pa.list_(pa.uint64())),
        ("shingles", pa.list_(pa.uint32())),
    ]
)


def near_twin_figures(
    questions: dict[str, list[tuple[str, str]]], *, threshold: float, num_perm: int, shingle_words: int
) -> pa.Table:
    """split -> (question_id, question) as a table of each question's LSH band keys and sorted shingle hashes."""
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    bands = bands_and_rows(threshold, num_perm)
    for split, pairs in questions.items():
        found = run_to_end(fingerprint([{"question": text} for _, text in pairs], shingle_words, num_perm, *bands))
        offsets = found.shingle_offsets
        for index, (question_id, _) in enumerate(pairs):
            columns["question_id"].append(question_id)
            columns["split"].append(split)
            columns["band_keys"].append(found.band_keys[index])
            columns["shingles"].append(found.shingle_hashes[offsets[index] : offsets[index + 1]])
    return pa.table(columns, schema=SCHEMA)


class _Figures:
    """The figures of one or more questions, as numpy arrays: question i's shingles are
    shingles[offsets[i]:offsets[i + 1]]."""

    def __init__(self, table: pa.Table, owners: list[str]):
        self.question_ids: list[str] = table.column("question_id").to_pylist()
        self.owners = owners  # the discipline of each question
        keys = table.column("band_keys").combine_chunks()
        self.band_keys = keys.flatten().to_numpy().reshape(len(table), -1)
        shingles = table.column("shingles").combine_chunks()
        self.shingles = shingles.flatten().to_numpy()
        offsets = shingles.offsets.to_numpy()
        self.offsets = offsets - offsets[0]

    def shingles_of(self, index: int) -> np.ndarray:
        return self.shingles[self.offsets[index] : self.offsets[index + 1]]


def _read(path: Path, split: str) -> pa.Table:
    return pq.read_table(path, filters=[("split", "=", split)], schema=SCHEMA)


def cross_discipline_twins(
    units: Iterable[tuple[str, Path]], threshold: float
) -> dict[str, dict[str, list[dict[str, str]]]]:
    """discipline_id -> test question_id -> its near-twins in other disciplines' train splits, each
    {"discipline_id", "question_id"}: per other discipline, the twin of lowest question_id. `units` are
    (discipline_id, its near-twin figures file); disciplines and questions in id order."""
    units = sorted(units)
    tests = [(discipline_id, table) for discipline_id, path in units if len(table := _read(path, "test"))]
    if not tests:
        return {}
    test = _Figures(
        pa.concat_tables([table for _, table in tests]),
        [discipline_id for discipline_id, table in tests for _ in range(len(table))],
    )
    twins: dict[tuple[int, str], str] = {}  # (test question, other discipline) -> the twin's question_id
    for discipline_id, path in units:
        if not len(table := _read(path, "train")):
            continue
        train = _Figures(table, [])
        for test_index, train_index in _candidates(test.band_keys, train.band_keys):
            if test.owners[test_index] == discipline_id:
                continue
            key, question_id = (test_index, discipline_id), train.question_ids[train_index]
            if key in twins and twins[key] <= question_id:
                continue
            if _jaccard(test.shingles_of(test_index), train.shingles_of(train_index)) >= threshold:
                twins[key] = question_id
    found: dict[str, dict[str, list[dict[str, str]]]] = {}
    ids = test.question_ids
    for (test_index, other), question_id in sorted(twins.items(), key=lambda item: (ids[item[0][0]], item[0][1])):
        found.setdefault(test.owners[test_index], {}).setdefault(test.question_ids[test_index], []).append(
            {"discipline_id": other, "question_id": question_id}
        )
    return {discipline_id: found[discipline_id] for discipline_id in sorted(found)}


def remembered_twins(units: list[tuple[str, Path]], threshold: float, memo: Path) -> dict:
    """`cross_discipline_twins`, remembered in `memo` (a file in the work dir) for the same figures files: a rebuild
    that changes no unit reads that one file instead of every unit's figures (0.2 s of CPU a unit). A unit's files
    never change in place (a rebuilt unit writes new ones), so their names, sizes and times identify them; a memo
    that does not match or cannot be read is computed again."""
    files = [(discipline_id, str(path), path.stat().st_size, path.stat().st_mtime_ns) for discipline_id, path in units]
    key = hashlib.sha256(json.dumps([threshold, sorted(files)]).encode()).hexdigest()
    try:
        remembered = json.loads(memo.read_text())
        if remembered["key"] == key:
            return remembered["twins"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    twins = cross_discipline_twins(units, threshold)
    partial = memo.with_name(memo.name + ".partial")
    partial.write_text(json.dumps({"key": key, "twins": twins}))
    os.replace(partial, memo)
    return twins


def _candidates(test_keys: np.ndarray, train_keys: np.ndarray) -> list[tuple[int, int]]:
    """(test, train) index pairs that share a band's key: what LSH proposes, before Jaccard decides."""
    pairs: set[tuple[int, int]] = set()
    for band in range(test_keys.shape[1]):
        order = np.argsort(test_keys[:, band], kind="stable")
        ordered = test_keys[order, band]
        left = np.searchsorted(ordered, train_keys[:, band], "left")
        right = np.searchsorted(ordered, train_keys[:, band], "right")
        for train_index in np.flatnonzero(right > left).tolist():
            pairs.update((int(test_index), train_index) for test_index in order[left[train_index] : right[train_index]])
    return sorted(pairs)


def _jaccard(mine: np.ndarray, theirs: np.ndarray) -> float:
    shared = len(np.intersect1d(mine, theirs))
    union = len(np.union1d(mine, theirs))
    return shared / union if union else 0.0
