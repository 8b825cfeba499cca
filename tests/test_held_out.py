"""The held-out split's check across disciplines (glan.quality.held_out) on planted figures: what counts as a
near-twin is dedup's rule (Jaccard of the word sets at the threshold), within a discipline nothing is reported (its
own dedup ran), and each other discipline's twin is the one of lowest question_id."""

import hashlib
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glan.errors import UserError
from glan.quality import cross_discipline_twins, near_twin_figures, remembered_twins, write_near_twin_figures
from glan.quality.held_out import SCHEMA

SETTINGS = {"threshold": 0.8, "num_perm": 128, "shingle_words": 1}


def words(*key, count: int = 20) -> list[str]:
    return ["w" + hashlib.sha256(repr((key, n)).encode()).hexdigest()[:10] for n in range(count)]


BASE = words("base")
ONE_CHANGED = " ".join(BASE[:-1] + ["one"])  # Jaccard 19/21 = 0.90 with BASE
THREE_CHANGED = " ".join(BASE[:-3] + ["one", "two", "three"])  # 17/23 = 0.74


def unit(tmp_path, discipline: str, train: list[tuple[str, str]], test: list[tuple[str, str]]):
    path = tmp_path / f"{discipline}.parquet"
    write_near_twin_figures(near_twin_figures({"train": train, "test": test}, **SETTINGS), path)
    return discipline, path


def test_twins_follow_dedups_threshold_and_skip_the_own_discipline(tmp_path):
    units = [
        unit(tmp_path, "algebra", [("a-train", " ".join(BASE))], [("a-test", " ".join(words("algebra")))]),
        unit(tmp_path, "biology", [("b-1", ONE_CHANGED), ("b-0", " ".join(BASE)), ("b-2", THREE_CHANGED)],
             [("b-test", " ".join(words("biology")))]),
        unit(tmp_path, "chemistry", [("c-0", THREE_CHANGED)], [("c-test", " ".join(BASE))]),
        unit(tmp_path, "drama", [("d-0", ONE_CHANGED), ("d-1", " ".join(words("drama")))], []),
        unit(tmp_path, "echo", [("e-0", THREE_CHANGED)], []),  # below the threshold: no twin
    ]
    assert cross_discipline_twins(units, SETTINGS["threshold"]) == {
        "chemistry": {"c-test": [{"discipline_id": "algebra", "question_id": "a-train"},
                                 {"discipline_id": "biology", "question_id": "b-0"},
                                 {"discipline_id": "drama", "question_id": "d-0"}]},
    }


def test_no_test_split_or_no_train_split_finds_nothing(tmp_path):
    only_train = unit(tmp_path, "algebra", [("a", " ".join(BASE))], [])
    only_test = unit(tmp_path, "biology", [], [("b", " ".join(BASE))])
    assert cross_discipline_twins([only_train], 0.8) == {}
    assert cross_discipline_twins([only_train, only_test], 0.8) == {"biology": {"b": [
        {"discipline_id": "algebra", "question_id": "a"}]}}
    assert cross_discipline_twins([only_test], 0.8) == {}


def test_a_units_figures_file_holds_a_row_group_per_split_and_reads_back_whole(tmp_path):
    # The check reads every unit's test questions, then one unit's train questions at a time: each read skips the
    # other split's row group.
    figures = near_twin_figures({"train": [("t-1", ONE_CHANGED), ("t-0", " ".join(BASE))],
                                 "test": [("s-0", THREE_CHANGED)]}, **SETTINGS)
    path = tmp_path / "figures.parquet"
    write_near_twin_figures(figures, path)
    file = pq.ParquetFile(path)
    assert [file.read_row_group(group).column("split").to_pylist() for group in range(file.num_row_groups)] == [
        ["train", "train"], ["test"]]
    assert pq.read_table(path).equals(figures)
    for empty in ({}, {"train": [], "test": []}):
        write_near_twin_figures(near_twin_figures(empty, **SETTINGS), path)
        assert pq.ParquetFile(path).num_row_groups == 0 and pq.read_table(path).schema == SCHEMA


# -- a work dir from elsewhere, or damaged --------------------------------------------------------------------------

def _figures(band_keys: list, question_ids: list | None = None, split: str = "test") -> pa.Table:
    return pa.table({"question_id": question_ids or [f"q-{n}" for n in range(len(band_keys))],
                     "split": [split] * len(band_keys),
                     "band_keys": pa.array(band_keys, pa.list_(pa.uint64())),
                     "shingles": pa.array([[1, 2]] * len(band_keys), pa.list_(pa.uint32()))}, schema=SCHEMA)


def _damaged(path, kind: str) -> None:
    if kind == "not parquet":
        path.write_bytes(b"PAR1 not a parquet file")
    elif kind == "a folder":
        path.mkdir()
    elif kind == "other columns":
        pq.write_table(pa.table({"question": ["q"], "split": ["test"]}), path)
    elif kind == "other types":  # what a cast to SCHEMA would read silently
        pq.write_table(pa.table({"question_id": [7], "split": ["test"], "band_keys": [[1, 2]],
                                 "shingles": [[1, 2]]}), path)
    elif kind == "a null":
        pq.write_table(_figures([[1, 2], None]), path)
    elif kind == "rows of different band counts":
        pq.write_table(_figures([[1, 2], [1, 2, 3]]), path)
    elif kind == "another unit's band count":
        write_near_twin_figures(_figures([[1, 2, 3]], ["t-0"], "train"), path)


DAMAGE = {
    "not parquet": "Parquet magic bytes not found in footer",
    "a folder": "is a directory",
    "other columns": "columns question string, split string",
    "other types": "columns question_id int64, split string",
    "a null": "a null value",
    "rows of different band counts": "rows of different band counts",
    "another unit's band count": "3 band keys a row where the other units' figures have 2",
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_figures_file_glan_did_not_write_is_one_line_naming_it_and_what_to_do(tmp_path, kind):
    good = tmp_path / "algebra" / "f1" / "near_twins.parquet"
    good.parent.mkdir(parents=True)
    write_near_twin_figures(_figures([[1, 2]], ["a-test"]), good)
    bad = tmp_path / "biology" / "f2" / "near_twins.parquet"
    bad.parent.mkdir(parents=True)
    _damaged(bad, kind)
    for check in (lambda: cross_discipline_twins([("algebra", good), ("biology", bad)], 0.8),
                  lambda: remembered_twins([("algebra", good), ("biology", bad)], 0.8, tmp_path / "held_out.json")):
        with pytest.raises(UserError) as raised:
            check()
        message = str(raised.value)
        assert message.startswith(f"{bad}: not the near-duplicate figures glan writes (")
        assert DAMAGE[kind] in message
        assert message.endswith(f"). Delete its unit folder {bad.parent} and build again: the unit is made again "
                                "from the cache.")
        assert "\n" not in message
    assert not (tmp_path / "held_out.json").exists()


def test_the_held_out_memo_is_never_written_through_a_link(tmp_path):
    figures = unit(tmp_path, "algebra", [("a", " ".join(BASE))], [])[1], unit(
        tmp_path, "biology", [], [("b", " ".join(BASE))])[1]
    units = [("algebra", figures[0]), ("biology", figures[1])]
    work = tmp_path / "work"
    work.mkdir()
    memo = work / "held_out.json"
    targets = {name: tmp_path / f"target-{name}" for name in ("memo", "partial")}
    for target in targets.values():
        target.write_text("keep me")
    memo.symlink_to(targets["memo"])
    (work / "held_out.json.partial").symlink_to(targets["partial"])
    twins = remembered_twins(units, 0.8, memo)
    assert twins == {"biology": {"b": [{"discipline_id": "algebra", "question_id": "a"}]}}
    assert [target.read_text() for target in targets.values()] == ["keep me", "keep me"]
    # The link at the memo is replaced by the memo itself; the one at the old temp name is left alone.
    assert not memo.is_symlink() and json.loads(memo.read_text())["twins"] == twins
    assert sorted(path.name for path in work.iterdir()) == ["held_out.json", "held_out.json.partial"]
    assert (work / "held_out.json.partial").is_symlink()


def test_a_held_out_memo_that_is_a_fifo_or_a_link_is_not_read(tmp_path):
    figures = unit(tmp_path, "algebra", [("a", " ".join(BASE))], [])[1], unit(
        tmp_path, "biology", [], [("b", " ".join(BASE))])[1]
    units = [("algebra", figures[0]), ("biology", figures[1])]
    twins = {"biology": {"b": [{"discipline_id": "algebra", "question_id": "a"}]}}
    fifo, linked = tmp_path / "fifo" / "held_out.json", tmp_path / "linked" / "held_out.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    assert remembered_twins(units, 0.8, fifo) == twins and json.loads(fifo.read_text())["twins"] == twins
    # A link to a memo of the right key and other twins: the link is not followed, the twins are found again.
    linked.parent.mkdir()
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps({"key": json.loads(fifo.read_text())["key"], "twins": {}}))
    linked.symlink_to(planted)
    assert remembered_twins(units, 0.8, linked) == twins and not linked.is_symlink()
