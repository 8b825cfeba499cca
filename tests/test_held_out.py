"""The held-out split's check across disciplines (glan.quality.held_out) on planted figures: what counts as a
near-twin is dedup's rule (Jaccard of the word sets at the threshold), within a discipline nothing is reported (its
own dedup ran), and each other discipline's twin is the one of lowest question_id."""

import hashlib

import pyarrow.parquet as pq

from glan.quality import cross_discipline_twins, near_twin_figures, write_near_twin_figures
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
