"""glan.quality on planted data: every number asserted is known from how the data was built."""

import asyncio
import json
import random
import re
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch.hashfunc import sha1_hash32

from glan.config.settings import Benchmark
from glan.quality import dedup as dedup_module
from glan.quality import (
    AnswerFilter,
    BenchmarkError,
    ConfigStats,
    QualityReport,
    answer_drop_reason,
    build_stats,
    decontaminate,
    deduplicate,
    held_out_ids,
    load_benchmark,
    question_steps,
    run_steps,
)
from glan.quality.slices import run_to_end
from glan.quality.text import normalize

# 20 distinct words, so one changed word gives Jaccard 19/21 and two give 18/22 (threshold 0.8).
BASE = (
    "Explain how the mitochondria convert glucose into usable energy during aerobic respiration "
    "and why oxygen serves as final electron acceptor"
)
ONE_WORD_CHANGED = BASE.replace("usable", "available")
TWO_WORDS_CHANGED = BASE.replace("usable", "available").replace("why", "whether")
SAME_TOPIC = (
    "Describe the role of NADH and FADH2 in oxidative phosphorylation and how the proton gradient "
    "drives ATP synthase in mitochondria"
)
OTHER_TOPIC = (
    "Compare the structure of DNA and RNA, and explain how base pairing supports faithful replication of genes"
)


def question(question_id, text, discipline_id="biology", subject_id="cell-biology"):
    return {"question_id": question_id, "discipline_id": discipline_id, "subject_id": subject_id, "question": text}


def planted_questions():
    return [
        question("q01", BASE),
        question(
            "q02",
            "  explain HOW the mitochondria convert glucose into usable energy, during aerobic respiration; "
            "and why oxygen serves as final electron acceptor?!",
        ),
        question("q03", ONE_WORD_CHANGED),
        question("q04", TWO_WORDS_CHANGED, discipline_id="chemistry", subject_id="biochemistry"),
        question("q05", SAME_TOPIC),
        question("q06", OTHER_TOPIC),
        question("q00", BASE.upper() + ".", discipline_id="chemistry", subject_id="biochemistry"),
    ]


def test_normalize_ignores_case_whitespace_and_punctuation_but_keeps_operators():
    assert normalize("  Hello,\tWORLD!  “Quoted”… ") == "hello world quoted"
    assert normalize("x*y") != normalize("x/y")


def test_exact_and_near_duplicates_are_dropped_and_distinct_questions_kept():
    result = deduplicate(planted_questions())
    assert [row["question_id"] for row in result.kept] == ["q05", "q06", "q00"]
    assert [(drop.row["question_id"], drop.reason, drop.duplicate_of) for drop in result.dropped] == [
        ("q01", "exact", "q00"),
        ("q02", "exact", "q00"),
        ("q03", "near", "q00"),
        ("q04", "near", "q00"),
    ]


def test_near_dedup_can_be_switched_off():
    result = deduplicate(planted_questions(), near=False)
    assert [row["question_id"] for row in result.kept] == ["q03", "q04", "q05", "q06", "q00"]


def test_survivors_do_not_depend_on_input_order():
    expected = deduplicate(planted_questions())
    for seed in range(5):
        shuffled = planted_questions()
        random.Random(seed).shuffle(shuffled)
        result = deduplicate(shuffled)
        assert sorted(row["question_id"] for row in result.kept) == ["q00", "q05", "q06"]
        assert result.dropped == expected.dropped


def test_signatures_and_bands_are_datasketchs_and_propose_exactly_its_lsh_candidates():
    """dedup computes MinHash for many questions at once with numpy: the signatures are datasketch's (seeded, its
    default affine32 scheme), and two questions share a band key exactly when MinHashLSH would propose them."""
    from datasketch import MinHash, MinHashLSH

    from glan.quality.dedup import MINHASH_SEED, _permutations, _signatures, bands_and_rows, fingerprint

    words = [f"w{number}" for number in range(60)]
    rng = random.Random(7)
    texts = [rng.sample(words, 30) for _ in range(40)]
    texts += [text[:29] + ["other"] for text in texts]  # a near duplicate of each: one word of 30 changed
    texts.append([])  # an empty question
    theirs = MinHash.bulk([[word.encode() for word in text] for text in texts], num_perm=128, seed=MINHASH_SEED)
    hashes = [sorted(sha1_hash32(word.encode()) for word in set(text)) for text in texts]
    ours = _signatures(
        np.array([value for text in hashes for value in text], dtype=np.uint32),
        np.array([len(text) for text in hashes]),
        _permutations(128),
    )
    assert np.array_equal(ours, np.array([minhash.hashvalues for minhash in theirs]))

    bands, rows = bands_and_rows(0.8, 128)
    keys = run_to_end(
        fingerprint([question(f"q{item}", " ".join(text)) for item, text in enumerate(texts)], 1, 128, bands, rows)
    ).band_keys
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    proposed = 0
    for item, minhash in enumerate(theirs):
        candidates = set(np.flatnonzero((keys[:item] == keys[item]).any(axis=1)).tolist())
        assert candidates == set(lsh.query(minhash)), item
        proposed += len(candidates)
        lsh.insert(item, minhash, check_duplication=False)
    assert proposed >= 40  # every planted near duplicate found its original, and these are not all empty sets


def lsh_and_exact_jaccard(rows: list[dict], threshold: float = 0.8) -> dict[str, tuple[str, str]]:
    """question_id -> (reason, duplicate_of): dedup as glan did it before it was vectorised, from datasketch's own
    MinHash and MinHashLSH: in question_id order, exact duplicates first, then each question checked by exact
    Jaccard against every kept question its LSH bands propose."""
    from datasketch import MinHash, MinHashLSH

    from glan.quality.dedup import MINHASH_SEED, bands_and_rows

    texts = {row["question_id"]: normalize(row["question"]) for row in rows}
    first_with_text, dropped = {}, {}
    for question_id in sorted(texts):
        first = first_with_text.setdefault(texts[question_id], question_id)
        if first != question_id:
            dropped[question_id] = ("exact", first)
    lsh, kept_words = MinHashLSH(num_perm=128, params=bands_and_rows(threshold, 128)), {}
    for question_id in sorted(set(texts) - set(dropped)):
        words = frozenset(texts[question_id].split())
        minhash = MinHash(num_perm=128, seed=MINHASH_SEED)
        minhash.update_batch([word.encode() for word in words])
        similar = [
            other
            for other in lsh.query(minhash)
            if len(words & kept_words[other]) / len(words | kept_words[other]) >= threshold
        ]
        if similar:
            dropped[question_id] = ("near", min(similar))
        else:
            lsh.insert(question_id, minhash)
            kept_words[question_id] = words
    return dropped


def dropped_by(result) -> dict[str, tuple[str, str]]:
    return {drop.row["question_id"]: (drop.reason, drop.duplicate_of) for drop in result.dropped}


def varied_questions(count: int, seed: int = 11) -> list[dict]:
    """Questions of 12 to 40 words from a vocabulary with Zipf-like frequencies (unrelated questions share common
    words, as real ones do); every tenth a copy of an earlier one with 1 to 3 words changed, every fiftieth an
    exact repeat in other case."""
    rng = random.Random(seed)
    vocabulary = [f"v{number}" for number in range(3000)]
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
    texts = []
    for number in range(count):
        if number % 50 == 49:
            words = [word.upper() for word in rng.choice(texts)]
        elif number % 10 == 9:
            words = list(rng.choice(texts))
            for position in rng.sample(range(len(words)), rng.randint(1, 3)):
                words[position] = rng.choice(vocabulary)
        else:
            words = rng.choices(vocabulary, weights, k=rng.randint(12, 40))
        texts.append(words)
    return [question(f"v{number:05d}", " ".join(words) + "?") for number, words in enumerate(texts)]


TEMPLATE = (
    "explain how the mitochondria convert glucose into usable energy during aerobic respiration and why "
    "oxygen serves as the final electron acceptor in that chain"
).split()


def near_twins(count: int, seed: int = 5) -> list[dict]:
    """One 24-word template with 1 to 3 words replaced, so every question shares LSH bands with every other."""
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        words = list(TEMPLATE)
        for position in rng.sample(range(len(words)), rng.randint(1, 3)):
            words[position] = f"x{rng.randrange(400)}"
        rows.append(question(f"t{number:05d}", " ".join(words) + "?"))
    return rows


def test_on_varied_questions_the_result_is_exactly_datasketchs_lsh_with_exact_jaccard():
    rows = varied_questions(1500)
    result = deduplicate(rows)
    assert dropped_by(result) == lsh_and_exact_jaccard(rows)
    assert Counter(drop.reason for drop in result.dropped) == {"near": 84, "exact": 30}
    assert len(result.kept) == 1386


def test_on_near_twins_the_candidate_bound_is_the_one_difference_from_datasketchs_lsh(monkeypatch):
    from glan.quality.dedup import BUCKET_CAP, Fingerprints, bands_and_rows

    rows = near_twins(1000)
    reference = lsh_and_exact_jaccard(rows)
    compared = []  # per question with candidates: how many kept questions it was compared with
    jaccards = Fingerprints.jaccards
    monkeypatch.setattr(
        Fingerprints,
        "jaccards",
        lambda self, index, others: compared.append(len(others)) or jaccards(self, index, others),
    )
    result = deduplicate(rows)
    bands, _ = bands_and_rows(0.8, 128)
    assert len(compared) == 996 and max(compared) <= bands * BUCKET_CAP
    # A few near twins of kept questions beyond the bound are kept (607 dropped as near without it, 604 with it);
    # every drop names a question with a lower id that really is within the threshold, and kept unless it is the
    # first of exact duplicates and itself a near duplicate (exact duplicates are found first).
    assert Counter(reason for reason, _ in reference.values()) == {"near": 607, "exact": 4}
    assert Counter(drop.reason for drop in result.dropped) == {"near": 604, "exact": 4}
    words = {row["question_id"]: set(normalize(row["question"]).split()) for row in rows}
    kept_ids = {row["question_id"] for row in result.kept}
    assert len(kept_ids) == 392
    for question_id, (reason, survivor) in dropped_by(result).items():
        assert survivor < question_id and (survivor in kept_ids or reason == "exact")
        shared = words[question_id] & words[survivor]
        assert len(shared) / len(words[question_id] | words[survivor]) >= (1.0 if reason == "exact" else 0.8)
    # Without the bound (a bucket as large as the input), the result is the reference's, and some question is
    # compared with more kept questions than the bound allows.
    monkeypatch.setattr(dedup_module, "BUCKET_CAP", len(rows))
    compared.clear()
    assert dropped_by(deduplicate(rows)) == reference
    assert max(compared) > bands * BUCKET_CAP


def test_a_bucket_holds_the_first_bucket_cap_kept_questions():
    from glan.quality.dedup import BUCKET_CAP, KeptBuckets

    kept = KeptBuckets(3)
    for rank in range(20):
        kept.insert(rank, np.array([0, 2]))
    kept.insert(20, np.array([1]))
    assert sorted(kept.candidates(np.array([0, 2])).tolist()) == list(range(BUCKET_CAP))
    assert sorted(kept.candidates(np.array([2, 1])).tolist()) == [*range(BUCKET_CAP), 20]


def test_dedup_on_the_event_loop_lets_other_tasks_run_between_its_steps(monkeypatch):
    from glan.quality import Deduplicate, slices

    settings = quality_settings().dedup
    rows = near_twins(1000)
    expected_kept = Deduplicate(settings)(rows, QualityReport())
    monkeypatch.setattr(slices, "SLICE_S", 0)  # a turn for the loop after every step, however fast the machine

    async def dedup_beside_a_counter():
        turns, done = 0, asyncio.Event()

        async def counter():
            nonlocal turns
            while not done.is_set():
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(counter())
        await asyncio.sleep(0)
        before = turns
        kept = await Deduplicate(settings).run(rows, QualityReport())
        done.set()
        await task
        return kept, turns - before

    kept, turns = asyncio.run(dedup_beside_a_counter())
    assert kept == expected_kept
    # A step at least per question fingerprinted, per question looked up, per kept row collected; a dedup run in one
    # piece would let the counter run once.
    assert turns >= 3 * len(rows)


BENCHMARK_ITEM = (
    "A train leaves the station at noon traveling at sixty miles per hour toward a city "
    "that lies two hundred and forty miles away across the plains"
)
OTHER_BENCHMARK_ITEM = (
    "Which of the following gases makes up most of the atmosphere of the planet Earth at sea level today"
)


def benchmark_words(start, count):
    return " ".join(BENCHMARK_ITEM.split()[start : start + count])


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def file_benchmark(path, column, name=None):
    """A local-file benchmark entry as glan 0.1 wrote it (name, path, text_column), indexed."""
    return load_benchmark(Benchmark(name=name or path.name.split(".")[0], path=str(path), text_column=column))


def test_a_shared_13_gram_drops_a_question_and_a_12_gram_does_not(tmp_path):
    benchmark = file_benchmark(write_jsonl(tmp_path / "trains.jsonl", [{"text": BENCHMARK_ITEM}]), "text")
    rows = [
        question("q13", f"Homework: {benchmark_words(3, 13).upper()}! How long does the trip take?"),
        question("q12", f"Homework: {benchmark_words(3, 12)}, then stops. How long does the trip take?"),
    ]
    result = decontaminate(rows, [benchmark])
    assert [row["question_id"] for row in result.kept] == ["q12"]
    assert [(drop.row["question_id"], drop.benchmark) for drop in result.dropped] == [("q13", "trains")]
    assert result.hits_per_benchmark == {"trains": 1}


def test_hits_are_counted_per_benchmark_from_jsonl_and_parquet(tmp_path):
    trains = file_benchmark(
        write_jsonl(tmp_path / "trains.jsonl", [{"id": 1, "prompt": BENCHMARK_ITEM}]), "prompt", name="gsm-like"
    )
    parquet_path = tmp_path / "atmosphere.parquet"
    pq.write_table(pa.table({"question": [OTHER_BENCHMARK_ITEM, "short item"]}), parquet_path)
    atmosphere = file_benchmark(parquet_path, "question")
    rows = [
        question("both", f"{benchmark_words(0, 14)} and {OTHER_BENCHMARK_ITEM}"),
        question("trains", benchmark_words(10, 15), discipline_id="physics"),
        question("air", OTHER_BENCHMARK_ITEM.lower()),
        question("clean", OTHER_TOPIC),
    ]
    result = decontaminate(rows, [trains, atmosphere])
    assert [row["question_id"] for row in result.kept] == ["clean"]
    assert [(drop.row["question_id"], drop.benchmark) for drop in result.dropped] == [
        ("both", "gsm-like"),
        ("trains", "gsm-like"),
        ("air", "atmosphere"),
    ]
    assert result.hits_per_benchmark == {"gsm-like": 2, "atmosphere": 2}


def test_a_missing_text_column_names_the_file_and_the_columns(tmp_path):
    jsonl_path = write_jsonl(tmp_path / "bench.jsonl", [{"input": "a", "target": "b"}])
    with pytest.raises(BenchmarkError) as jsonl_error:
        file_benchmark(jsonl_path, "question")
    assert str(jsonl_error.value) == (
        f"{jsonl_path}:1: no column 'question' (columns: input, target). "
        "Set text_columns to the columns that hold the benchmark's texts."
    )
    parquet_path = tmp_path / "bench.parquet"
    pq.write_table(pa.table({"input": ["a"], "target": ["b"]}), parquet_path)
    with pytest.raises(BenchmarkError) as parquet_error:
        file_benchmark(parquet_path, "question")
    assert str(parquet_error.value) == (
        f"{parquet_path}: no column 'question' (columns: input, target). "
        "Set text_columns to the columns that hold the benchmark's texts."
    )


def test_an_unreadable_benchmark_file_is_named(tmp_path):
    missing = tmp_path / "missing.parquet"
    with pytest.raises(BenchmarkError, match=f"^{re.escape(str(missing))}: cannot read benchmark file"):
        file_benchmark(missing, "text")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(BenchmarkError, match=f"^{re.escape(str(broken))}:2: not valid JSON"):
        file_benchmark(broken, "text")


def discipline_questions(discipline_id, count):
    return [question(f"{discipline_id}-{number}", f"question {number}", discipline_id) for number in range(count)]


def test_the_test_split_has_n_per_discipline_and_keeps_its_members_when_a_discipline_is_added():
    rows = discipline_questions("algebra", 80) + discipline_questions("poetry", 30)
    test_ids = held_out_ids(rows, per_discipline=50)
    train_ids = {row["question_id"] for row in rows} - test_ids
    test_rows = [row for row in rows if row["question_id"] in test_ids]
    assert sum(row["discipline_id"] == "algebra" for row in test_rows) == 50
    assert sum(row["discipline_id"] == "poetry" for row in test_rows) == 30
    assert len(train_ids) == 30 and not train_ids & test_ids

    grown = discipline_questions("geology", 70) + list(reversed(rows))
    grown_test_ids = held_out_ids(grown, per_discipline=50)
    assert {question_id for question_id in grown_test_ids if not question_id.startswith("geology")} == test_ids
    assert sum(question_id.startswith("geology") for question_id in grown_test_ids) == 50


REFUSALS = ["I'm sorry", "I cannot", "As an AI"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("The derivative of x^2 is 2x.", None),
        ("   \n", "empty"),
        (None, "empty"),
        ("I’M SORRY, but I can't help with that.", "refusal"),
        ("Sure. As an AI language model, I think the answer is 4.", "refusal"),
    ],
)
def test_answers_are_classified(answer, reason):
    assert answer_drop_reason(answer, REFUSALS) == reason


def quality_settings(benchmarks=()):
    return SimpleNamespace(
        dedup=SimpleNamespace(exact=True, near=True, threshold=0.8, num_perm=128, shingle_words=1),
        decontamination=SimpleNamespace(ngram=13, benchmarks=list(benchmarks)),
        answer_filters=SimpleNamespace(refusal_patterns=REFUSALS),
    )


def test_the_question_steps_dedup_then_decontaminate_and_count_per_discipline(tmp_path):
    benchmark_path = write_jsonl(tmp_path / "trains.jsonl", [{"text": BENCHMARK_ITEM}])
    rows = planted_questions() + [question("q07", BENCHMARK_ITEM, discipline_id="physics")]
    benchmarks = [file_benchmark(benchmark_path, "text", "trains")]
    report = QualityReport()
    # The build runs the steps per discipline; here one call over three disciplines shows dedup stays in each.
    kept = [
        row
        for discipline_id in ("biology", "chemistry", "physics")
        for row in asyncio.run(
            run_steps(
                question_steps(quality_settings(), benchmarks),
                [row for row in rows if row["discipline_id"] == discipline_id],
                report,
            )
        )
    ]
    # Dedup stays within a discipline (so adding one never drops another's rows): biology keeps q01,
    # chemistry keeps q00, though they are the same question.
    assert sorted(row["question_id"] for row in kept) == ["q00", "q01", "q05", "q06"]
    assert report.to_dict() == {
        "dropped": {
            "exact": {"total": 1, "by_discipline": {"biology": 1}},
            "near": {"total": 2, "by_discipline": {"biology": 1, "chemistry": 1}},
            "contaminated": {"total": 1, "by_discipline": {"physics": 1}},
        },
        "benchmark_hits": {"trains": {"question": 1, "answer": 0}},
    }


def instruction(question_id, answer, **metadata):
    return {**question(question_id, f"Question {question_id} about cells?"), "answer": answer, **metadata}


def histogram(*first: int) -> dict[str, int]:
    """A words histogram as stats.json writes it: `first` the counts of its first bins, the others 0."""
    counts = [*first, *[0] * (8 - len(first))]
    return dict(zip(["0-9", "10-19", "20-49", "50-99", "100-199", "200-499", "500-999", "1000+"], counts, strict=True))


def test_stats_are_exact_on_a_tiny_input():
    questions = [
        {**question("a", "one two three"), "level": "introductory", "strategy": "single_session"},
        {**question("b", " ".join(["word"] * 12)), "level": "advanced", "strategy": "two_sessions"},
        {
            **question("c", " ".join(["word"] * 25), discipline_id="physics"),
            "level": "advanced",
            "strategy": "single_session",
        },
    ]
    report = QualityReport()
    instructions = AnswerFilter(quality_settings().answer_filters)(
        [instruction("a", "Yes."), instruction("b", "I cannot answer."), instruction("c", "  ")],
        report,
    )
    halves = [ConfigStats.of(questions[:1]), ConfigStats.of(questions[1:])]  # as two units' figures merge
    halves[0].merge(ConfigStats.from_raw(json.loads(json.dumps(halves[1].to_raw()))))
    stats = build_stats({"questions": halves[0], "instructions/train": ConfigStats.of(instructions)}, report)
    assert stats == {
        "configs": {
            "questions": {
                "rows": 3,
                "by_discipline": {"biology": 2, "physics": 1},
                "by_level": {"advanced": 2, "introductory": 1},
                "by_strategy": {"single_session": 2, "two_sessions": 1},
                "words": {
                    "question": {
                        "count": 3,
                        "min": 3,
                        "p50": 12,
                        "p90": 25,
                        "max": 25,
                        "mean": 13.33,
                        "histogram": histogram(1, 1, 1),
                    }
                },
                # Pooled over the two halves: distinct-1 (3 + 1) / (3 + 37), distinct-2 (2 + 1) / (2 + 35).
                "repetition": {
                    "question": {
                        "rows": 3,
                        "top_openings": [
                            {"opening": "word word word", "rows": 2, "share": 0.6667},
                            {"opening": "one two three", "rows": 1, "share": 0.3333},
                        ],
                        "distinct": {"distinct_1": 0.1, "distinct_2": 0.0811},
                    }
                },
            },
            "instructions/train": {
                "rows": 1,
                "by_discipline": {"biology": 1},
                "words": {
                    "question": {
                        "count": 1,
                        "min": 4,
                        "p50": 4,
                        "p90": 4,
                        "max": 4,
                        "mean": 4.0,
                        "histogram": histogram(1),
                    },
                    "answer": {
                        "count": 1,
                        "min": 1,
                        "p50": 1,
                        "p90": 1,
                        "max": 1,
                        "mean": 1.0,
                        "histogram": histogram(1),
                    },
                },
                "repetition": {
                    "question": {
                        "rows": 1,
                        "top_openings": [{"opening": "question a about", "rows": 1, "share": 1.0}],
                        "distinct": {"distinct_1": 1.0, "distinct_2": 1.0},
                    },
                    "answer": {  # one word: no bigram, so no ratio
                        "rows": 1,
                        "top_openings": [{"opening": "yes", "rows": 1, "share": 1.0}],
                        "distinct": {"distinct_1": 1.0, "distinct_2": None},
                    },
                },
            },
        },
        "quality": {
            "dropped": {
                "empty": {"total": 1, "by_discipline": {"biology": 1}},
                "refusal": {"total": 1, "by_discipline": {"biology": 1}},
            },
            "benchmark_hits": {},
        },
    }
