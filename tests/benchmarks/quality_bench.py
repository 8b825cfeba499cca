"""Dedup + decontamination at the issue's scale: 20,000 questions against a 10,000-item benchmark.

Run: cd /work/main && PYTHONPATH=. .venv/bin/python tests/benchmarks/quality_bench.py
  (target: under 60 s and 1 GB peak RSS)
The data is synthetic and seeded; planted near-duplicates and contaminated questions let the
script check recall, not just speed.
"""

import asyncio
import hashlib
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from builder.quality import QualityReport, index_benchmark, load_benchmark, question_steps, run_steps
from builder.quality.dedup import shingles
from builder.quality.text import normalize

QUESTIONS = 20_000
BENCHMARK_ITEMS = 10_000
NEAR_DUPLICATE_SHARE = 0.05
CONTAMINATED = 200
EXACT_DUPLICATES = 100
DISCIPLINES = 100
THRESHOLD = 0.8


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


def sentence(generator, words, weights, low, high) -> list[str]:
    # Zipf-like word frequencies, so unrelated questions share common words as real ones do.
    return generator.choices(words, weights, k=generator.randint(low, high))


def synthesize(generator: random.Random):
    words = vocabulary(generator)
    weights = [1 / rank for rank in range(1, len(words) + 1)]
    benchmark = [" ".join(sentence(generator, words, weights, 30, 120)) for _ in range(BENCHMARK_ITEMS)]
    near_duplicates = int(QUESTIONS * NEAR_DUPLICATE_SHARE)
    originals = QUESTIONS - EXACT_DUPLICATES - near_duplicates - CONTAMINATED
    texts = [sentence(generator, words, weights, 15, 45) for _ in range(originals)]
    disciplines = [number % DISCIPLINES for number in range(originals)]
    # Same words, other case: an exact duplicate once normalized (dedup works within a discipline,
    # so every copy stays in its original's discipline).
    for _ in range(EXACT_DUPLICATES):
        original = generator.randrange(originals)
        texts.append([word.upper() for word in texts[original]])
        disciplines.append(disciplines[original])
    planted_pairs = []
    for _ in range(near_duplicates):
        original = generator.randrange(len(texts))
        copy = list(texts[original])
        for position in generator.sample(range(len(copy)), generator.randint(1, 2)):
            copy[position] = generator.choice(words)
        planted_pairs.append((original, len(texts)))
        texts.append(copy)
        disciplines.append(disciplines[original])
    for number in range(CONTAMINATED):
        item = generator.choice(benchmark).split()
        start = generator.randrange(len(item) - 20)
        texts.append(sentence(generator, words, weights, 3, 10) + item[start : start + generator.randint(13, 20)])
        disciplines.append(number % DISCIPLINES)
    rows = [
        {
            "question_id": hashlib.sha256(str(number).encode()).hexdigest()[:16],
            "discipline_id": f"discipline-{disciplines[number]}",
            "subject_id": f"subject-{number % 1000}",
            "question": " ".join(text) + "?",
        }
        for number, text in enumerate(texts)
    ]
    return rows, benchmark, planted_pairs


def main() -> None:
    rows, benchmark, planted_pairs = synthesize(random.Random(2402))
    with tempfile.TemporaryDirectory() as folder:
        benchmark_path = Path(folder) / "benchmark.jsonl"
        benchmark_path.write_text("".join(json.dumps({"question": text}) + "\n" for text in benchmark))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        report = QualityReport()
        benchmarks = [index_benchmark(load_benchmark(benchmark_path, "question", "synthetic"), 13)]
        kept = asyncio.run(run_steps(question_steps(quality_settings(), benchmarks), rows, report))
        seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kept_ids = {row["question_id"] for row in kept}
    above_threshold = [
        (original, copy)
        for original, copy in planted_pairs
        if jaccard(*(shingles(normalize(rows[index]["question"]).split(), 1) for index in (original, copy)))
        >= THRESHOLD
    ]
    caught = sum(not {rows[original]["question_id"], rows[copy]["question_id"]} <= kept_ids
                 for original, copy in above_threshold)
    contaminated_kept = sum(row["question_id"] in kept_ids for row in rows[-CONTAMINATED:])
    counts = {reason: entry["total"] for reason, entry in report.to_dict()["dropped"].items()}
    print(f"questions {len(rows)}, benchmark items {len(benchmark)}, kept {len(kept)}, dropped {counts}")
    print(f"planted near-duplicate pairs with Jaccard >= {THRESHOLD}: {len(above_threshold)} "
          f"of {len(planted_pairs)}, collapsed {caught}")
    print(f"planted contaminated questions: {CONTAMINATED}, kept {contaminated_kept}")
    print(f"quality steps wall time {seconds:.1f} s; peak RSS {peak_rss_mb:.0f} MB "
          f"(after synthesis, before the call: {rss_before / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
