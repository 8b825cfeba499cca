"""Engine throughput against the test server (not a pytest test):

    .venv/bin/python -m tests.benchmarks.engine_bench [--requests 20000] [--concurrency 32 128 512]

The server runs in its own process with 100 ms latency, so the ideal rate is concurrency / 0.1 s.
Each (concurrency, output kind) runs in a fresh client process with a fresh work dir, so the figures
include cache writes and the peak RSS is that run's own. Prints requests/s against the ideal, client
CPU ms per request and peak RSS. `--profile` writes a cProfile of one run to engine_bench.prof.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import Field

from glan.llm.free_text import FreeText
from glan.schemas import Strict

LATENCY_S = 0.1


class Question(Strict):  # a small JSON schema (strict: as OpenAI requires): the structured path, without the big models
    question: str = Field(min_length=20)


TEXT = FreeText(Question)  # the free-text path: the reply's content is the question


def client_run(base_url: str, requests: int, concurrency: int, structured: bool, profile: bool) -> dict:
    import asyncio

    from glan.llm.accounting import Accounting
    from glan.llm.attempts import LLMRequest
    from glan.llm.cache import Cache
    from glan.config.settings import Limits
    from glan.llm.engine import Engine
    from glan.llm.routes import Endpoint, Route

    async def run_all(engine, route, batch):
        async with engine:
            return await engine.map("bench", route, batch, engine.cache)

    with tempfile.TemporaryDirectory() as work:
        engine = Engine(Cache(Path(work) / "cache.sqlite"), Limits(concurrency=concurrency, timeout_s=60), Accounting({}))
        batch = [LLMRequest(f"item-{i}", [{"role": "system", "content": "Write one question."},
                                          {"role": "user", "content": f"Topic number {i}."}],
                            {"temperature": 1.0, "max_tokens": 64}, Question if structured else TEXT)
                 for i in range(requests)]
        route = Route("test-model", (Endpoint(base_url, mode="json_schema"),))
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        if profile:
            import cProfile

            cProfile.runctx("results = asyncio.run(run_all(engine, route, batch))", globals(), locals(),
                            "engine_bench.prof")
        results = asyncio.run(run_all(engine, route, batch)) if not profile else None
        wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
        ok = sum(result.ok for result in results) if results else requests
    return {"ok": ok, "wall_s": wall, "cpu_ms_per_request": 1000 * cpu / requests,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--profile", action="store_true", help="cProfile the first run only")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: one measured run, JSON on stdout
    args = parser.parse_args()
    if args.client:
        base_url, concurrency, structured = json.loads(args.client)
        print(json.dumps(client_run(base_url, args.requests, concurrency, structured, args.profile)))
        return

    from tests.servers import start_openai_server

    print(f"{'output':<8} {'conc':>5} {'req/s':>8} {'ideal':>7} {'share':>6} {'CPU ms/req':>10} {'peak RSS MB':>11}")
    with start_openai_server(latency_ms=LATENCY_S * 1000) as server:
        for structured in (False, True):
            for concurrency in args.concurrency:
                command = [sys.executable, "-m", "tests.benchmarks.engine_bench", "--requests", str(args.requests),
                           "--client", json.dumps([server.base_url, concurrency, structured])]
                if args.profile:
                    command.append("--profile")
                run = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
                rate, ideal = args.requests / run["wall_s"], concurrency / LATENCY_S
                print(f"{'json' if structured else 'text':<8} {concurrency:>5} {rate:>8,.0f} {ideal:>7,.0f} "
                      f"{rate / ideal:>6.0%} {run['cpu_ms_per_request']:>10.3f} {run['peak_rss_mb']:>11.0f}"
                      + ("" if run["ok"] == args.requests else f"  ({args.requests - run['ok']} failed)"), flush=True)
                if args.profile:
                    return


if __name__ == "__main__":
    main()
