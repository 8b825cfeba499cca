"""Benchmark entries in taxonomy.yaml, local benchmark files, and matching whole pairs against them.

Every expectation is known from how the texts were written. Hub entries read from the Hub test server are in
test_benchmarks_hub.py.
"""

import gzip
import importlib
import json
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glan.cli import main
from glan.config.settings import Benchmark, Decontamination
from glan.quality import BenchmarkError, decontaminate, index_benchmark, load_benchmark, load_benchmarks
from glan.quality.decontaminate import contaminated, pair_texts
from glan.quality.text import normalize
from glan.taxonomy import TaxonomyError, load_taxonomy
from tests.test_taxonomy import settings_then_fields

# The module, which glan.quality's function of the same name hides.
decontaminate_module = importlib.import_module("glan.quality.decontaminate")

WHERE = "generation.quality.decontamination.benchmarks"
SHA = "cc7b047b6e5bb11b4f1af84efc572db110a51b3c"

# A long item (24 words), two short items above min_words and one below.
TRAIN = ("A train leaves the station at noon traveling at sixty miles per hour toward a city that lies two hundred "
         "and forty miles away across the plains")
KNUCKLES = "What happens if you crack your knuckles a lot?"  # 9 words
MOONS = "How many moons does the planet Mars have?"  # 8 words: min_words exactly
BOILING = "What is the boiling point of water?"  # 7 words: under min_words
SUN = "the sun"  # an ARC answer
COMMON = "Which of the following is true?"  # an MMLU-style stem of 6 words


def taxonomy(tmp_path, decontamination: str):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(settings_then_fields("generation:\n  quality:\n    decontamination:\n" + decontamination))
    return path


def hub_entry(**changes):
    entry = {"name": "gsm8k", "dataset": "openai/gsm8k", "revision": SHA, "configs": ["main"],
             "splits": ["train", "test"], "text_columns": ["question", "answer"]}
    return Benchmark(**{**entry, **changes})


def file_entry(path, columns=("question", "answer"), name="local"):
    return Benchmark(name=name, path=str(path), text_columns=list(columns))


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


# ---- entries in taxonomy.yaml -------------------------------------------------------------------------------


def test_hub_file_and_glan_0_1_entries_load(tmp_path):
    path = taxonomy(tmp_path, f"""\
      ngram: 13
      benchmarks:
        - {{name: gsm8k, dataset: openai/gsm8k, revision: {SHA}, configs: main, splits: [train, test],
           text_columns: [question, answer]}}
        - {{name: humaneval, path: HumanEval.jsonl.gz, text_columns: prompt}}
        - {{name: planted, path: planted.jsonl, text_column: text}}
""")
    benchmarks = load_taxonomy(path).generation.quality.decontamination.benchmarks
    assert [(b.name, b.dataset, b.revision, b.configs, b.splits, b.path, b.text_columns) for b in benchmarks] == [
        ("gsm8k", "openai/gsm8k", SHA, ["main"], ["train", "test"], None, ["question", "answer"]),
        ("humaneval", None, None, [], [], "HumanEval.jsonl.gz", ["prompt"]),
        ("planted", None, None, [], [], "planted.jsonl", ["text"]),
    ]
    assert [b.source for b in benchmarks] == [f"openai/gsm8k@{SHA}", "HumanEval.jsonl.gz", "planted.jsonl"]


def test_the_shipped_list_is_the_papers_seven_and_the_test_presets_turn_it_off():
    shipped = load_taxonomy("taxonomy.yaml")
    benchmarks = shipped.generation.quality.decontamination.benchmarks
    assert [b.name for b in benchmarks] == ["gsm8k", "math", "humaneval", "mbpp", "bbh", "arc", "mmlu"]
    assert all(b.dataset and b.revision for b in benchmarks)
    assert len(next(b for b in benchmarks if b.name == "bbh").configs) == 27
    assert len(shipped.settings("paper").quality.decontamination.benchmarks) == 7
    assert shipped.settings("demo").quality.decontamination.benchmarks == []
    assert shipped.settings("smoke").quality.decontamination.benchmarks == []


BAD_ENTRIES = {
    "neither": ("- {name: x, text_columns: q}", 'benchmark "x" needs either "dataset:" (a Hugging Face dataset '
                'id, with revision, configs and splits) or "path:" (a local file), not both or neither.'),
    "no revision": ("- {name: x, dataset: a/b, configs: c, splits: s, text_columns: q}",
                    'benchmark "x" needs "revision:" the commit sha (40 hex digits) of a/b to read, so that every '
                    "build checks the same items. Find it in the dataset's history on the Hub, or with "
                    'huggingface_hub.HfApi().dataset_info("a/b").sha.'),
    "a branch": ("- {name: x, dataset: a/b, revision: main, configs: c, splits: s, text_columns: q}",
                 'benchmark "x" has revision "main"; give the commit sha (40 hex digits) of a/b to read'),
    "no splits": (f"- {{name: x, dataset: a/b, revision: {SHA}, configs: c, text_columns: q}}",
                  'benchmark "x" needs "splits:", e.g. splits: [train, test].'),
    "splits of a file": ("- {name: x, path: x.csv, splits: [test], text_columns: q}",
                         '"splits" is for a Hugging Face dataset, not a local file (path). Remove it, or name the '
                         'dataset with "dataset:" instead of "path:".'),
    "a text file": ("- {name: x, path: x.txt, text_columns: q}",
                    '"x.txt" is not a benchmark file glan reads. Give a .jsonl, .jsonl.gz, .parquet, .csv file.'),
    "no text column": ("- {name: x, path: x.csv}", "text_columns: missing."),
    "a name twice": ("- {name: x, path: x.csv, text_columns: q}\n        - {name: x, path: y.csv, text_columns: q}",
                     'benchmark name "x" appears twice. Give each benchmark its own name: hits are counted per '
                     "name."),
}


@pytest.mark.parametrize("entry, expected", BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_a_bad_entry_is_one_line_with_its_file_and_line(tmp_path, capsys, entry, expected):
    path = taxonomy(tmp_path, "      benchmarks:\n        " + entry + "\n")
    with pytest.raises(TaxonomyError):
        load_taxonomy(path)
    assert main(["taxonomy", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"glan: {path}:") and err.count("\n") == 1
    assert expected in err


def test_min_words_above_ngram_is_refused():
    with pytest.raises(ValueError, match="min_words 14 is greater than ngram 13. Set min_words <= ngram"):
        Decontamination(min_words=14)


# ---- local files ---------------------------------------------------------------------------------------------


RECORDS = [{"id": 1, "question": TRAIN, "answer": "It arrives at four in the afternoon, after four hours."},
           {"id": 2, "question": KNUCKLES, "answer": None}]
# The answer of record 1 has 11 words: a short item above min_words, matched whole.
ITEMS = [TRAIN, KNUCKLES, RECORDS[0]["answer"]]


def local_copies(tmp_path):
    """The same records as .jsonl, .jsonl.gz, .parquet and .csv."""
    jsonl = write_jsonl(tmp_path / "bench.jsonl", RECORDS)
    gz = tmp_path / "bench.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl.read_bytes()))
    table = pa.Table.from_pylist(RECORDS)
    pq.write_table(table, tmp_path / "bench.parquet")
    (tmp_path / "bench.csv").write_text('id,question,answer\n1,"' + TRAIN + '","' + RECORDS[0]["answer"]
                                        + '"\n2,' + '"' + KNUCKLES + '",\n')
    return [jsonl, gz, tmp_path / "bench.parquet", tmp_path / "bench.csv"]


def test_every_file_format_gives_the_items_of_its_text_columns(tmp_path):
    probes = [{"question": f"Homework: {text} Show your work."} for text in ITEMS] + [{"question": "1 2"}]
    for path in local_copies(tmp_path):
        index = load_benchmark(file_entry(path))
        assert (index.items, index.too_short) == (3, 0), path
        assert sorted(contaminated(probes, [index])) == [0, 1, 2], path
        only_questions = load_benchmark(file_entry(path, columns=["question"]))
        assert only_questions.items == 2 and sorted(contaminated(probes, [only_questions])) == [0, 1], path


def test_a_missing_column_names_the_file_and_its_columns(tmp_path):
    for path in local_copies(tmp_path):
        with pytest.raises(BenchmarkError) as error:
            load_benchmark(file_entry(path, columns=["question", "solution"]))
        where = f"{path}:1" if ".jsonl" in path.name else str(path)
        assert str(error.value) == (f"{where}: no column 'solution' (columns: id, question, answer). Set text_columns "
                                    "to the columns that hold the benchmark's texts.")


def test_hostile_or_broken_files_are_one_line(tmp_path):
    cases = {
        "missing.csv": None,
        "truncated.jsonl.gz": gzip.compress(json.dumps({"question": " ".join(map(str, range(5000)))}).encode())[:500],
        "not-gzip.jsonl.gz": b'{"question": "plain text, not gzip"}\n',
        "not-parquet.parquet": b"PAR1 but nothing else",
        "latin1.jsonl": '{"question": "caf\xe9"}\n'.encode("latin-1"),
        "numbers.jsonl": b'{"question": 12}\n',
        "list.jsonl": b'["question"]\n',
        "bad.jsonl": b'{"question": "fine"}\n{"question": \n',
    }
    expected = {
        "missing.csv": "cannot read benchmark file",
        "truncated.jsonl.gz": "cannot read benchmark file",
        "not-gzip.jsonl.gz": "cannot read benchmark file",
        "not-parquet.parquet": "cannot read benchmark file",
        "latin1.jsonl": "cannot read benchmark file",
        "numbers.jsonl": ":1: column 'question' holds int, expected text.",
        "list.jsonl": ":1: expected a JSON object, found list.",
        "bad.jsonl": ":2: not valid JSON (Expecting value). Write one JSON object per line.",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(BenchmarkError) as error:
            load_benchmark(file_entry(path, columns=["question"]))
        message = str(error.value)
        assert message.startswith(str(path)) and "\n" not in message, message
        assert expected[name] in message, message


def test_a_list_of_benchmarks_loads_in_order(tmp_path):
    jsonl, gz, parquet, _ = local_copies(tmp_path)
    indexes = load_benchmarks(Decontamination(benchmarks=[file_entry(gz, name="a"), file_entry(parquet, name="b")]))
    assert [(index.name, index.items) for index in indexes] == [("a", 3), ("b", 3)]


# ---- matching whole pairs -------------------------------------------------------------------------------------


def index_of(name, *items, ngram=13, min_words=8):
    return index_benchmark(name, items, ngram, min_words)


def test_a_short_item_from_min_words_up_is_matched_whole_and_a_shorter_one_never():
    index = index_of("short", KNUCKLES, MOONS, BOILING, SUN, COMMON)
    assert (index.items, index.too_short, index.lengths) == (5, 3, (8, 9))
    pairs = [
        {"question": f"My doctor asked: {KNUCKLES.upper()} Explain the physiology of the joint."},
        {"question": "Astronomy homework.", "answer": f"Recall the question {MOONS.lower()} The answer is two."},
        {"question": f"{BOILING} Answer for water at sea level and on Everest."},  # the whole 7-word item
        {"question": "Why does the sun rise in the east?", "answer": "Because the Earth spins; the sun stays put."},
        {"question": f"{COMMON} Photosynthesis needs light; plants make sugar."},
        # the words of an item, but not on word boundaries or not all of them
        {"question": "What happens if you crack your knuckles alot?"},
        {"question": "How many moons does the planet Mars hold, and how many does it have?"},
    ]
    assert contaminated(pairs, [index]) == {0: [("short", "question")], 1: [("short", "answer")]}
    only_too_short = index_of("too-short", SUN, BOILING)
    assert (only_too_short.items, only_too_short.too_short, only_too_short.lengths) == (2, 2, ())
    assert contaminated([{"question": f"{SUN} {BOILING}"}], [only_too_short]) == {}


def test_a_13_word_run_is_contamination_and_12_words_are_not():
    index = index_of("trains", TRAIN)
    words = TRAIN.split()
    pairs = [{"question": "Homework: " + " ".join(words[3:16]).upper() + "! How long does the trip take?"},
             {"question": "Homework: " + " ".join(words[3:15]) + ", then stops. How long does the trip take?"}]
    assert (index.items, index.too_short, index.lengths) == (1, 0, (13,))
    assert contaminated(pairs, [index]) == {0: [("trains", "question")]}


def test_hits_are_counted_per_benchmark_and_per_side():
    trains, short = index_of("trains", TRAIN), index_of("short", KNUCKLES)
    rows = [
        {"question_id": "clean", "messages": [{"role": "user", "content": "Describe the water cycle."},
                                              {"role": "assistant", "content": "Water evaporates, condenses..."}]},
        {"question_id": "question", "messages": [{"role": "user", "content": TRAIN},
                                                 {"role": "assistant", "content": "Four hours."}]},
        {"question_id": "answer", "messages": [{"role": "user", "content": "Quote a benchmark."},
                                               {"role": "assistant", "content": f"Sure: {TRAIN}"}]},
        {"question_id": "both", "messages": [{"role": "user", "content": KNUCKLES},
                                             {"role": "assistant", "content": f"{KNUCKLES} Also: {TRAIN}"}]},
    ]
    result = decontaminate(rows, [trains, short])
    assert [row["question_id"] for row in result.kept] == ["clean"]
    assert [(drop.row["question_id"], drop.hits) for drop in result.dropped] == [
        ("question", (("trains", "question"),)),
        ("answer", (("trains", "answer"),)),
        ("both", (("trains", "answer"), ("short", "question"), ("short", "answer"))),
    ]
    assert result.dropped[2].benchmark == "trains"
    assert result.hits == {"trains": {"question": 1, "answer": 2}, "short": {"question": 1, "answer": 1}}
    assert result.hits_per_benchmark == {"trains": 3, "short": 1}


def test_question_rows_are_checked_on_their_question_only():
    rows = [{"question_id": "q1", "question": f"Say: {KNUCKLES}"}, {"question_id": "q2", "question": "Hello there."}]
    assert pair_texts(rows[0]) == {"question": rows[0]["question"]}
    result = decontaminate(rows, [index_of("short", KNUCKLES)])
    assert [row["question_id"] for row in result.kept] == ["q2"]
    assert result.hits == {"short": {"question": 1}}


def test_matching_agrees_with_a_plain_reading_of_the_rule(monkeypatch):
    """Random texts over six words, so that runs repeat often; chunks of a few words, so that windows meet every
    chunk boundary: the vectorised match equals the rule read literally."""
    monkeypatch.setattr(decontaminate_module, "_CHUNK_WORDS", 7)
    generator = random.Random(2402)
    vocabulary = ["a", "b", "c", "d", "e", "f"]

    def text(low, high):
        return " ".join(generator.choices(vocabulary, k=generator.randint(low, high)))

    ngram, min_words = 6, 3
    benchmarks = {name: [text(1, 12) for _ in range(15)] for name in ("first", "second")}
    pairs = [{"question": text(0, 14), "answer": text(0, 14)} for _ in range(300)]
    indexes = [index_benchmark(name, items, ngram, min_words) for name, items in benchmarks.items()]

    def runs(words, length):
        return {tuple(words[start:start + length]) for start in range(len(words) - length + 1)}

    expected = {}
    for pair_index, pair in enumerate(pairs):
        for name, items in benchmarks.items():
            for side, side_text in pair.items():
                words = normalize(side_text).split()
                item_runs = [runs(item.split(), ngram) if len(item.split()) >= ngram
                             else {tuple(item.split())} if len(item.split()) >= min_words else set() for item in items]
                if any(found & runs(words, len(next(iter(found)))) for found in item_runs if found):
                    expected.setdefault(pair_index, []).append((name, side))
    assert 20 < len(expected) < 280  # the draw gives both outcomes
    assert contaminated(pairs, indexes) == expected


def test_a_benchmark_path_that_is_not_a_regular_file_is_refused_before_it_is_read(tmp_path):
    # A FIFO made the read wait forever, /dev/zero filled memory: neither is opened.
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.parquet"
    folder.mkdir()
    for path in (fifo, zero, folder, tmp_path / "fifo-csv.csv"):
        if path.suffix == ".csv":
            os.mkfifo(path)
        with pytest.raises(BenchmarkError) as error:
            load_benchmark(file_entry(path, columns=["question"]))
        assert str(error.value) == (f"{path}: cannot read benchmark file (not a regular file). Check the path in "
                                    "generation.quality.decontamination.benchmarks.")


def test_a_benchmark_file_is_read_up_to_1_gib(tmp_path, monkeypatch):
    import glan.quality.benchmarks as benchmarks

    big = tmp_path / "big.csv"
    with open(big, "wb") as file:  # sparse: nothing is written, nothing is read
        file.truncate(benchmarks.MAX_BENCHMARK_BYTES + 1)
    too_big = ("cannot read benchmark file (more than 1,073,741,824 bytes, the most glan reads of one). Check the path "
               "in generation.quality.decontamination.benchmarks.")
    with pytest.raises(BenchmarkError) as error:
        load_benchmark(file_entry(big, columns=["question"]))
    assert str(error.value) == f"{big}: {too_big}"
    # A .jsonl.gz of a few bytes can unpack to any size: its text counts too (one long line, then many short ones).
    monkeypatch.setattr(benchmarks, "MAX_BENCHMARK_BYTES", 1000)
    line = json.dumps({"question": "word " * 100}) + "\n"  # 515 characters
    for name, text in (("one-line.jsonl.gz", "x" * 5000), ("lines.jsonl.gz", line * 2)):
        path = tmp_path / name
        path.write_bytes(gzip.compress(text.encode()))
        assert path.stat().st_size < 1000
        with pytest.raises(BenchmarkError) as error:
            load_benchmark(file_entry(path, columns=["question"]))
        assert str(error.value) == f"{path}: {too_big.replace('1,073,741,824', '1,000')}"
    within = tmp_path / "within.jsonl.gz"
    within.write_bytes(gzip.compress(line.encode()))
    assert load_benchmark(file_entry(within, columns=["question"])).items == 1
