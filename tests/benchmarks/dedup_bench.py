"""Question dedup at scale, before and after (not a pytest test):

    .venv/bin/python -m tests.benchmarks.dedup_bench [--counts 10000 20000 40000] [--main /work/main]
        [--main-twins-up-to 20000] [--skip twins ordinary loop] [--json PATH]

Every figure comes from a fresh process (`python tests/benchmarks/dedup_bench.py --child ...` with PYTHONPATH at
the checkout measured), so peak RSS is that run's own and --main measures another checkout's `builder` (its
`deduplicate(rows, exact=, near=, threshold=, num_perm=, shingle_words=)`) on the same data. Scenarios:
  twins     every question a near-twin: one 24-word template with 1 to 3 words changed (from 5,000 words), at each
            count: CPU time (and its ratio to the previous count: linear is 2.0 for a doubling), peak RSS, and
            what was dropped; --main only up to --main-twins-up-to (its cost grows with the square of the count)
  ordinary  20,000 questions of 15 to 45 words from a 20,000-word vocabulary with Zipf-like frequencies, 5% of
            them planted near-duplicates (1 or 2 words changed), 0.5% exact repeats: CPU time, peak RSS, the
            planted pairs above the threshold that were collapsed, and the rows whose fate differs between --main
            and this checkout
  loop      an event loop (builder.llm.loop, as a build runs it) handling the responses of 128 requests in flight
            at 100 ms latency (JSON parsing and a socket round trip each, as a build does) while one unit's dedup of
            the largest count of twins (--main: at most --main-twins-up-to) runs in a thread (--main's way), in a
            thread, in a process (ProcessPoolExecutor, started before) or on the loop a step at a time (this
            checkout's way): the responses handled per second during the dedup as a share of the free loop's rate
            just before, and the longest gap between two responses
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import operator
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

THIS_FILE = Path(__file__).resolve()
REPO_ROOT = THIS_FILE.parents[2]
TEMPLATE = ("explain how the mitochondria convert glucose into usable energy during aerobic respiration and why "
            "oxygen serves as the final electron acceptor in that chain").split()
VOCABULARY = [f"word{number}" for number in range(5000)]
SETTINGS = {"exact": True, "near": True, "threshold": 0.8, "num_perm": 128, "shingle_words": 1}
DRIVERS = ("thread", "process", "slices")
# The event loop's traffic meanwhile, as in scale_bench's throughput build: IN_FLIGHT requests answered after
# LATENCY_S, each response handled on the loop (ideal: 1,280 responses/s).
IN_FLIGHT, LATENCY_S = 128, 0.1
RESPONSE = json.dumps({"id": "chatcmpl-0", "object": "chat.completion", "model": "test-model",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "word " * 400}}],
                       "usage": {"prompt_tokens": 900, "completion_tokens": 500, "total_tokens": 1400}})
RESPONSE_PARSES = 100  # about 0.3 ms of CPU: a build spends 0.4 to 0.5 ms a request


def near_twins(count: int, seed: int = 2402) -> list[dict]:
    """`count` questions, each the template with 1 to 3 of its words replaced: any two share at least 18 of 24
    words, so every question shares LSH bands with every other and a good part of them are within J 0.8."""
    generator = random.Random(seed)
    rows = []
    for number in range(count):
        words = list(TEMPLATE)
        for position in generator.sample(range(len(words)), generator.randint(1, 3)):
            words[position] = generator.choice(VOCABULARY)
        rows.append({"question_id": hashlib.sha256(f"twin-{number}".encode()).hexdigest()[:16],
                     "discipline_id": "biology", "question": " ".join(words).capitalize() + "?"})
    return rows


def ordinary(count: int = 20_000, seed: int = 2402) -> tuple[list[dict], list[tuple[int, int]]]:
    """The ordinary questions, and the planted near-duplicate pairs (row numbers)."""
    generator = random.Random(seed)
    syllables = [consonant + vowel for consonant in "bcdfghklmnprstvz" for vowel in "aeiou"]
    words = sorted({"".join(generator.choices(syllables, k=generator.randint(1, 4))) for _ in range(20_000)})
    weights = [1 / rank for rank in range(1, len(words) + 1)]  # common words shared by unrelated questions
    texts, planted_pairs = [], []
    for number in range(count):
        if number % 200 == 199:
            texts.append([word.upper() for word in texts[generator.randrange(number)]])
        elif number % 20 == 19:
            original = generator.randrange(number)
            copy = list(texts[original])
            for position in generator.sample(range(len(copy)), generator.randint(1, 2)):
                copy[position] = generator.choice(words)
            planted_pairs.append((original, number))
            texts.append(copy)
        else:
            texts.append(generator.choices(words, weights, k=generator.randint(15, 45)))
    rows = [{"question_id": hashlib.sha256(f"ordinary-{number}".encode()).hexdigest()[:16],
             "discipline_id": "biology", "question": " ".join(text) + "?"} for number, text in enumerate(texts)]
    return rows, planted_pairs


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- in the child process ------------------------------------------------------------------------------------

def child_dedup(scenario: str, count: int) -> dict:
    from builder.quality.dedup import deduplicate

    rows = near_twins(count) if scenario == "twins" else ordinary()[0]
    rss_before = rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    result = deduplicate(rows, **SETTINGS)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"questions": len(rows), "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "peak_rss_mb": round(rss_mb()), "rss_before_mb": round(rss_before),
            "kept": len(result.kept), "exact": sum(drop.reason == "exact" for drop in result.dropped),
            "near": sum(drop.reason == "near" for drop in result.dropped),
            "dropped_ids": sorted(drop.row["question_id"] for drop in result.dropped)}


def child_loop(driver: str, count: int) -> dict:
    import asyncio
    import concurrent.futures
    import multiprocessing

    from builder.llm.loop import run
    from builder.quality.dedup import deduplicate

    rows = near_twins(count)
    pool = None
    if driver == "process":
        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        started = time.perf_counter()
        pool.submit(deduplicate, near_twins(10), **SETTINGS).result()
        pool_start_s = time.perf_counter() - started

    async def dedup():
        if driver == "thread":
            return await asyncio.to_thread(lambda: deduplicate(rows, **SETTINGS))
        if driver == "process":
            return await asyncio.wrap_future(pool.submit(deduplicate, rows, **SETTINGS))
        from builder.quality.dedup import deduplicate_in_slices
        from builder.quality.slices import run_on_loop
        return await run_on_loop(deduplicate_in_slices(rows, **SETTINGS))

    async def measure():
        responses, done = [], asyncio.Event()
        ends = socket.socketpair()

        async def requests():  # one of IN_FLIGHT: wait out the latency, handle the response, again
            while not done.is_set():
                await asyncio.sleep(LATENCY_S)
                handle_response(ends)
                responses.append(time.perf_counter())

        senders = [asyncio.create_task(requests()) for _ in range(IN_FLIGHT)]
        await asyncio.sleep(1.0)
        free_rate = sum(at > time.perf_counter() - 0.5 for at in responses) / 0.5  # a free loop's pace
        started = time.perf_counter()
        result = await dedup()
        ended = time.perf_counter()
        done.set()
        await asyncio.gather(*senders)
        during = [started, *(at for at in responses if started <= at <= ended), ended]
        return free_rate, (len(during) - 2) / (ended - started), max(map(operator.sub, during[1:], during)), \
            ended - started, result

    cpu = time.process_time()
    free_rate, rate, longest_gap, wall, result = run(measure())
    cpu = time.process_time() - cpu
    if pool:
        pool.shutdown()
    figures = {"driver": driver, "questions": count, "wall_s": round(wall, 3), "process_cpu_s": round(cpu, 3),
               "kept": len(result.kept), "free_rate": round(free_rate), "rate": round(rate),
               "rate_share": round(rate / free_rate, 3), "longest_gap_ms": round(1000 * longest_gap, 1)}
    if pool:
        figures["pool_start_s"] = round(pool_start_s, 2)
    return figures


def handle_response(ends: tuple[socket.socket, socket.socket]) -> None:
    """About what a build spends on a response on the event loop: JSON parsing (RESPONSE_PARSES of a 2 KB reply)
    and a socket round trip, which releases the GIL as a request's I/O does."""
    for _ in range(RESPONSE_PARSES):
        json.loads(RESPONSE)
    ends[0].send(b".")
    ends[1].recv(1)


# -- in the parent -------------------------------------------------------------------------------------------

def in_child(repo: Path, *arguments: str) -> dict:
    command = [sys.executable, str(THIS_FILE), "--child", *arguments]
    environment = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(command, cwd=repo, env=environment, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{shlex.join(command)} (in {repo}) exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text} (load {load_average()})", file=sys.stderr, flush=True)


def show_twins(label: str, runs: list[dict]) -> None:
    print(f"\n## twins, {label}")
    print(" questions    CPU s  ratio  peak RSS MB (before)   kept  exact   near   load")
    previous = None
    for run in runs:
        ratio = f"{run['cpu_s'] / previous['cpu_s']:.2f}" if previous else "-"
        print(f"{run['questions']:>10,} {run['cpu_s']:>8.2f} {ratio:>6} {run['peak_rss_mb']:>8} "
              f"({run['rss_before_mb']:>4}) {run['kept']:>10,} {run['exact']:>6,} {run['near']:>6,}   {run['load']}")
        previous = run


def show_ordinary(runs: dict[str, dict], main_label: str | None) -> None:
    from builder.quality.text import normalize

    rows, planted_pairs = ordinary()

    def similarity(index: int, other: int) -> float:
        first, second = (set(normalize(rows[at]["question"]).split()) for at in (index, other))
        return len(first & second) / len(first | second)

    above = [(index, other) for index, other in planted_pairs if similarity(index, other) >= SETTINGS["threshold"]]
    print(f"\n## ordinary: {len(rows):,} questions, {len(planted_pairs):,} planted near-duplicate pairs, "
          f"{len(above):,} of them at Jaccard >= {SETTINGS['threshold']}")
    print(f"{'code':>10}  CPU s  peak RSS MB (before)    kept  exact  near  planted pairs collapsed   load")
    for label, run in runs.items():
        dropped = set(run["dropped_ids"])
        collapsed = sum(bool({rows[index]["question_id"], rows[other]["question_id"]} & dropped)
                        for index, other in above)
        print(f"{label:>10} {run['cpu_s']:>6.2f} {run['peak_rss_mb']:>8} ({run['rss_before_mb']:>4}) {run['kept']:>10,}"
              f" {run['exact']:>6,} {run['near']:>5,} {collapsed:>10,} of {len(above):,}   {run['load']}")
    if main_label:
        before, after = (set(runs[label]["dropped_ids"]) for label in (main_label, "this"))
        print(f"  rows dropped by {main_label} only: {len(before - after)}; "
              f"by this checkout only: {len(after - before)}")


def show_loop(runs: list[dict]) -> None:
    print(f"\n## loop: one unit's dedup of near-twins while the event loop handles {IN_FLIGHT} requests in flight at "
          f"{LATENCY_S * 1000:.0f} ms latency")
    print(f"{'code, driver':>18}  questions  dedup wall s  process CPU s  responses/s free  during  share"
          "  longest gap ms   load")
    for run in runs:
        started = f" (pool start {run['pool_start_s']} s)" if "pool_start_s" in run else ""
        print(f"{run['label']:>18} {run['questions']:>10,} {run['wall_s']:>13.2f} {run['process_cpu_s']:>14.2f}"
              f" {run['free_rate']:>17,} {run['rate']:>7,} {run['rate_share']:>6.0%} {run['longest_gap_ms']:>15}"
              f"   {run['load']}{started}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        kind, *rest = sys.argv[2:]
        figures = child_loop(rest[0], int(rest[1])) if kind == "loop" else child_dedup(kind, int(rest[0]))
        print(json.dumps(figures))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 20_000, 40_000])
    parser.add_argument("--main", type=Path, help="another checkout to measure the same way (the figures before)")
    parser.add_argument("--main-twins-up-to", type=int, default=20_000)
    parser.add_argument("--skip", nargs="+", choices=("twins", "ordinary", "loop"), default=[])
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    repos = {"this": REPO_ROOT, **({"main": args.main.resolve()} if args.main else {})}
    results = {"command": shlex.join(["python", "-m", "tests.benchmarks.dedup_bench", *sys.argv[1:]]),
               "twins": {}, "ordinary": {}, "loop": []}

    def measured(repo: Path, *arguments: str) -> dict:
        log(f"{repo}: {' '.join(arguments)}")
        load = load_average()
        return {**in_child(repo, *arguments), "load": load}

    if "twins" not in args.skip:
        for label, repo in repos.items():
            counts = [count for count in args.counts if label == "this" or count <= args.main_twins_up_to]
            results["twins"][label] = [measured(repo, "twins", str(count)) for count in counts]
    if "ordinary" not in args.skip:
        results["ordinary"] = {label: measured(repo, "ordinary", "0") for label, repo in repos.items()}
    if "loop" not in args.skip:
        count = max(args.counts)
        if args.main:
            main_count = str(min(count, args.main_twins_up_to))
            results["loop"].append({**measured(repos["main"], "loop", "thread", main_count), "label": "main, thread"})
        for driver in DRIVERS:
            results["loop"].append({**measured(REPO_ROOT, "loop", driver, str(count)), "label": f"this, {driver}"})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    for label, runs in results["twins"].items():
        show_twins(label, runs)
    if results["ordinary"]:
        show_ordinary(results["ordinary"], "main" if args.main else None)
    if results["loop"]:
        show_loop(results["loop"])
    print(f"\n$ {results['command']}")


if __name__ == "__main__":
    main()
