"""Dedup and decontamination at the paper's scale (not a pytest test):

    .venv/bin/python -m tests.benchmarks.quality_bench

1. The seven benchmarks the shipped taxonomy checks, at their real sizes (52,586 rows, 75,016 items: every
   configured text column of every configured split) with synthetic text of realistic length per benchmark and
   column: the time to index them all and the peak RSS it reaches.
2. Decontamination of 10,000 whole pairs (a question of ~40 words and an answer of ~300) against the seven, with
   planted hits on each side (13-word runs of long items, whole short items): time per 10,000 pairs and recall.
3. The question chain of a build (exact and near dedup, then decontamination) over 20,000 questions in 100
   disciplines, with planted near-duplicates and contaminated questions: wall time and recall.

4. The held-out split across disciplines (`... quality_bench held-out`, in a process of its own for its peak RSS):
   the near-twin figures of a unit of the paper's size (45,000 train questions, 50 test), their file's size, and
   the check of every discipline's test questions against every other's train split over 100 such units, with
   near-twins planted in one unit (10 of the test questions, one word changed): time and recall.

Targets: index under 30 s, decontamination under 10 s per 10,000 pairs, peak RSS under 1 GB. The data is seeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from glan.quality import (
    QualityReport,
    cross_discipline_twins,
    decontaminate,
    index_benchmark,
    near_twin_figures,
    question_steps,
    run_steps,
    write_near_twin_figures,
)
from glan.quality.dedup import shingles
from glan.quality.text import normalize

# name -> (rows, {text column: (fewest, most) words}), after the shipped list's configs and splits:
# GSM8K train+test 7,473+1,319; MATH train+test 7,500+5,000; HumanEval test 164; MBPP full, all four splits 974;
# BBH 27 tasks 6,511; ARC Challenge+Easy, all splits 2,590+5,197; MMLU all: dev+validation+test 285+1,531+14,042.
BENCHMARKS = {
    "gsm8k": (8_792, {"question": (20, 80), "answer": (20, 120)}),
    "math": (12_500, {"problem": (8, 70), "solution": (30, 250)}),
    "humaneval": (164, {"prompt": (30, 130), "canonical_solution": (5, 80)}),
    "mbpp": (974, {"text": (8, 25), "code": (10, 90)}),
    "bbh": (6_511, {"input": (15, 250)}),
    "arc": (7_787, {"question": (6, 45)}),
    "mmlu": (15_858, {"question": (5, 90)}),
}
PAIRS, QUESTION_WORDS, ANSWER_WORDS = 10_000, (20, 60), (200, 400)
PLANTED_PER_SIDE = 100  # per side: half a 13-word run of a long item, half a whole short item
QUESTIONS, NEAR_DUPLICATE_SHARE, CONTAMINATED, EXACT_DUPLICATES, DISCIPLINES, THRESHOLD = \
    20_000, 0.05, 200, 100, 100, 0.8
NGRAM, MIN_WORDS = 13, 8
UNIT_TRAIN, UNIT_TEST, UNITS, PLANTED_TWINS = 45_000, 50, 100, 10


def jaccard(first: frozenset, second: frozenset) -> float:
    return len(first & second) / len(first | second)


def quality_settings() -> SimpleNamespace:
    """The quality block of taxonomy.yaml with its defaults."""
    return SimpleNamespace(
        dedup=SimpleNamespace(exact=True, near=True, threshold=THRESHOLD, num_perm=128, shingle_words=1),
    )


def vocabulary(generator: random.Random, size: int = 20_000) -> list[str]:
    syllables = [consonant + vowel for consonant in "bcdfghklmnprstvz" for vowel in "aeiou"]
    return sorted({"".join(generator.choices(syllables, k=generator.randint(1, 4))) for _ in range(size)})


class Writer:
    """Zipf-like word frequencies, so that unrelated texts share common words as real ones do."""

    def __init__(self, generator: random.Random):
        self.generator, self.words = generator, vocabulary(generator)
        self.weights = [1 / rank for rank in range(1, len(self.words) + 1)]

    def words_between(self, low: int, high: int) -> list[str]:
        return self.generator.choices(self.words, self.weights, k=self.generator.randint(low, high))

    def text(self, low: int, high: int) -> str:
        return " ".join(self.words_between(low, high))


def benchmark_texts(writer: Writer, name: str) -> list[str]:
    rows, columns = BENCHMARKS[name]
    return [writer.text(*columns[column]) for column in columns for _ in range(rows)]


class Timer:
    """Wall and CPU seconds of what runs inside it (CPU is the steadier figure on a shared machine)."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self.started = time.perf_counter(), time.process_time()

    def __exit__(self, *exc_info):
        self.wall += time.perf_counter() - self.started[0]
        self.cpu += time.process_time() - self.started[1]

    def __str__(self):
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def index_the_seven(writer: Writer) -> tuple[list, dict[str, list[str]], Timer]:
    """The seven indexes, a sample of items per benchmark to plant, and the time to build them. Each benchmark's
    texts exist only while it is indexed, as when they are read from the Hub."""
    indexes, samples, timer = [], {}, Timer()
    for name in BENCHMARKS:
        texts = benchmark_texts(writer, name)
        samples[name] = writer.generator.sample(texts, 50)
        with timer:
            indexes.append(index_benchmark(name, texts, NGRAM, MIN_WORDS))
    return indexes, samples, timer


def plant(writer: Writer, item: str, long_item: bool, side_words: tuple[int, int]) -> str:
    words = item.split()
    if long_item:
        start = writer.generator.randrange(len(words) - NGRAM + 1)
        words = words[start:start + NGRAM]
    return " ".join(writer.words_between(*side_words) + [word.upper() for word in words]
                    + writer.words_between(3, 10)) + "."


def pairs_with_plants(writer: Writer, samples: dict[str, list[str]]) -> tuple[list[dict], dict[int, str]]:
    """The pairs as the answers stage writes them, and pair index -> the side a benchmark item was planted in."""
    long_items = [item for items in samples.values() for item in items if len(item.split()) >= NGRAM]
    short_items = [item for items in samples.values() for item in items if MIN_WORDS <= len(item.split()) < NGRAM]
    chosen = writer.generator.sample(range(PAIRS), 2 * PLANTED_PER_SIDE)
    planted = {pair: ("question" if number < PLANTED_PER_SIDE else "answer", number % 2 == 0)
               for number, pair in enumerate(chosen)}
    rows = []
    for index in range(PAIRS):
        question, answer = writer.text(*QUESTION_WORDS) + "?", writer.text(*ANSWER_WORDS) + "."
        if index in planted:
            side, long_item = planted[index]
            item = writer.generator.choice(long_items if long_item else short_items)
            if side == "question":
                question = plant(writer, item, long_item, (5, 30))
            else:
                answer = plant(writer, item, long_item, (100, 300))
        rows.append({"question_id": f"pair-{index}", "messages": [{"role": "user", "content": question},
                                                                  {"role": "assistant", "content": answer}]})
    return rows, {index: side for index, (side, _) in planted.items()}


def questions_with_plants(writer: Writer, samples: dict[str, list[str]]):
    generator = writer.generator
    long_items = [item for items in samples.values() for item in items if len(item.split()) > 20]
    near_duplicates = int(QUESTIONS * NEAR_DUPLICATE_SHARE)
    originals = QUESTIONS - EXACT_DUPLICATES - near_duplicates - CONTAMINATED
    texts = [writer.words_between(15, 45) for _ in range(originals)]
    disciplines = [number % DISCIPLINES for number in range(originals)]
    # Same words, other case: an exact duplicate once normalized (dedup works within a discipline, so every copy
    # stays in its original's discipline).
    for _ in range(EXACT_DUPLICATES):
        original = generator.randrange(originals)
        texts.append([word.upper() for word in texts[original]])
        disciplines.append(disciplines[original])
    planted_pairs = []
    for _ in range(near_duplicates):
        original = generator.randrange(len(texts))
        copy = list(texts[original])
        for position in generator.sample(range(len(copy)), generator.randint(1, 2)):
            copy[position] = generator.choice(writer.words)
        planted_pairs.append((original, len(texts)))
        texts.append(copy)
        disciplines.append(disciplines[original])
    for number in range(CONTAMINATED):
        item = generator.choice(long_items).split()
        start = generator.randrange(len(item) - 20)
        texts.append(writer.words_between(3, 10) + item[start:start + generator.randint(13, 20)])
        disciplines.append(number % DISCIPLINES)
    rows = [{"question_id": hashlib.sha256(str(number).encode()).hexdigest()[:16],
             "discipline_id": f"discipline-{disciplines[number]}", "subject_id": f"subject-{number % 1000}",
             "question": " ".join(text) + "?"} for number, text in enumerate(texts)]
    return rows, planted_pairs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    writer = Writer(random.Random(2402))
    rss_at_start = peak_rss_mb()
    indexes, samples, index_time = index_the_seven(writer)
    rss_after_index = peak_rss_mb()
    items = sum(index.items for index in indexes)
    keys_mb = sum(index.keys.nbytes for index in indexes) / 2**20
    print(f"1. the seven benchmarks: {sum(rows for rows, _ in BENCHMARKS.values()):,} rows, {items:,} items, "
          f"{sum(index.too_short for index in indexes):,} under {MIN_WORDS} words")
    print(f"   index: {index_time}; {keys_mb:.0f} MB of keys; peak RSS {rss_after_index:.0f} MB "
          f"(at start {rss_at_start:.0f} MB)")
    for index in indexes:
        print(f"     {index.name:<10} {index.items:>7,} items {len(index.keys):>10,} keys  lengths {index.lengths}")

    rows, planted = pairs_with_plants(writer, samples)
    timer = Timer()
    with timer:
        result = decontaminate(rows, indexes)
    dropped = {int(drop.row["question_id"].removeprefix("pair-")): drop for drop in result.dropped}
    caught = {side: sum(index in dropped and any(hit_side == side for _, hit_side in dropped[index].hits)
                        for index, planted_side in planted.items() if planted_side == side)
              for side in ("question", "answer")}
    words = sum(len(row["messages"][0]["content"].split()) + len(row["messages"][1]["content"].split())
                for row in rows) / len(rows)
    print(f"2. decontamination of {PAIRS:,} pairs ({words:.0f} words a pair on average): {timer}; "
          f"peak RSS {peak_rss_mb():.0f} MB")
    print(f"   planted: {PLANTED_PER_SIDE} per side, caught question {caught['question']}, answer {caught['answer']}; "
          f"dropped {len(result.dropped)} (unplanted: {len(set(dropped) - set(planted))})")

    questions, planted_pairs = questions_with_plants(writer, samples)
    timer, report = Timer(), QualityReport()
    by_discipline: dict[str, list[dict]] = {}
    for row in questions:
        by_discipline.setdefault(row["discipline_id"], []).append(row)

    async def question_chain() -> list[dict]:
        return [row for rows_of_one in by_discipline.values()
                for row in await run_steps(question_steps(quality_settings(), indexes), rows_of_one, report)]

    with timer:
        kept = asyncio.run(question_chain())
    kept_ids = {row["question_id"] for row in kept}
    above_threshold = [(original, copy) for original, copy in planted_pairs
                       if jaccard(*(shingles(normalize(questions[index]["question"]).split(), 1)
                                    for index in (original, copy))) >= THRESHOLD]
    collapsed = sum(not {questions[original]["question_id"], questions[copy]["question_id"]} <= kept_ids
                    for original, copy in above_threshold)
    contaminated_kept = sum(row["question_id"] in kept_ids for row in questions[-CONTAMINATED:])
    counts = {reason: entry["total"] for reason, entry in report.to_dict()["dropped"].items()}
    print(f"3. question chain, {len(questions):,} questions in {DISCIPLINES} disciplines: {timer}; dropped {counts}")
    print(f"   near-duplicate pairs with Jaccard >= {THRESHOLD}: {len(above_threshold)} of {len(planted_pairs)}, "
          f"collapsed {collapsed}; contaminated planted {CONTAMINATED}, kept {contaminated_kept}")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


def held_out(writer: Writer) -> None:
    """Scenario 4: one unit's figures, then the check over UNITS units. Every unit holds the same questions (the
    check's work does not depend on their text) but for the last, whose train split holds near-twins of the first
    PLANTED_TWINS test questions: each other unit's test questions then have those twins there."""
    train = [(f"train-{n}", writer.text(*QUESTION_WORDS)) for n in range(UNIT_TRAIN)]
    test = [(f"test-{n}", writer.text(*QUESTION_WORDS)) for n in range(UNIT_TEST)]
    settings = {"threshold": THRESHOLD, "num_perm": 128, "shingle_words": 1}
    timer = Timer()
    with timer:
        figures = near_twin_figures({"train": train, "test": test}, **settings)
    twins = [(f"twin-{n}", text.rsplit(" ", 1)[0] + " planted") for n, (_, text) in enumerate(test[:PLANTED_TWINS])]
    planted = near_twin_figures({"train": train[PLANTED_TWINS:] + twins, "test": test}, **settings)
    with tempfile.TemporaryDirectory() as folder:
        ordinary, special = Path(folder) / "ordinary.parquet", Path(folder) / "planted.parquet"
        write_near_twin_figures(figures, ordinary)  # as a unit writes them: a row group per split
        write_near_twin_figures(planted, special)
        size = ordinary.stat().st_size
        print(f"4. near-twin figures of a unit of {UNIT_TRAIN:,} train and {UNIT_TEST} test questions: {timer}; "
              f"{size / 2**20:.1f} MB on disk ({size / (UNIT_TRAIN + UNIT_TEST):.0f} bytes a question)")
        units = [(f"d{n:03}", ordinary) for n in range(UNITS - 1)] + [(f"d{UNITS - 1:03}", special)]
        timer = Timer()
        with timer:
            found = cross_discipline_twins(units, THRESHOLD)
    reported = sum(map(len, found.values()))
    print(f"   the check over {UNITS} units: {timer}; test questions with a twin elsewhere {reported} "
          f"(planted {PLANTED_TWINS * (UNITS - 1)}); peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    if sys.argv[1:] == ["held-out"]:
        held_out(Writer(random.Random(2402)))
    else:
        main()
