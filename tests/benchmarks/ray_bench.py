"""Two Ray workers against one local process on the same work (not a pytest test):

    .venv/bin/python -m tests.benchmarks.ray_bench [--disciplines 20] [--questions 20] [--latency-ms 100]
        [--concurrency 64] [--json PATH]

Both builds are `python -m glan.cli build` subprocesses against the OpenAI-protocol test server (its own
process) with the given latency, each in a fresh work dir, over the first --disciplines disciplines of the
repo's taxonomy with a `bench` preset (2 subject samples, --questions questions per subject). The Ray build
joins a local cluster this script starts first (one node, 2 CPUs: two workers, no dashboard), as a user joins
one started with `ray start`; its wall time includes joining the cluster and starting the workers. Reported:
wall times, their ratio, the requests, the server's busiest in-flight count, the server-side span (first
request received to last answered) and the machine's load average before and after, since other work on
the machine slows both builds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.scale_bench import write_project
from tests.servers import REPO_ROOT, most_in_flight, start_openai_server


def build(server, project: Path, work: Path, concurrency: int, environment: dict, *flags: str) -> dict:
    command = [sys.executable, "-m", "glan.cli", "build", "--taxonomy", str(project / "taxonomy.yaml"),
               "--preset", "bench", "--model", "test-model", "--base-url", server.base_url,
               "--concurrency", str(concurrency), "--work-dir", str(work / ".glan"), "--out", str(work / "dist"),
               *flags]
    server.reset()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{shlex.join(command)}\nexited {done.returncode}:\n{done.stderr[-3000:]}")
    log = server.log()
    span = max(record["responded"] for record in log) - min(record["received"] for record in log)
    return {"command": shlex.join(command), "wall_s": round(wall, 2), "requests": len(log),
            "server_span_s": round(span, 2), "most_in_flight": most_in_flight(log)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disciplines", type=int, default=20)
    parser.add_argument("--questions", type=int, default=20, help="questions per subject")
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a cluster on 127.0.0.1, before Ray is imported
    import ray

    figures = {"load_average_before": os.getloadavg(), "disciplines": args.disciplines, "questions": args.questions,
               "latency_ms": args.latency_ms, "concurrency": args.concurrency}
    with tempfile.TemporaryDirectory() as tmp, start_openai_server(latency_ms=args.latency_ms) as server:
        project = Path(tmp) / "project"
        write_project(REPO_ROOT, project, args.questions, args.disciplines)
        started = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
                 configure_logging=False)
        figures["ray_cluster_start_s"] = round(time.perf_counter() - started, 2)
        # Taken after ray.init, which turns on the cluster's token authentication (RAY_AUTH_MODE) for its clients.
        environment = {name: value for name, value in os.environ.items()
                       if name not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN")}
        figures["local"] = build(server, project, Path(tmp) / "local", args.concurrency, environment)
        try:
            address = ray.get_runtime_context().gcs_address
            figures["ray"] = build(server, project, Path(tmp) / "ray", args.concurrency, environment, "--ray", address)
        finally:
            ray.shutdown()
        same = subprocess.run(["diff", "-r", str(Path(tmp) / "local" / "dist"), str(Path(tmp) / "ray" / "dist")],
                              capture_output=True).returncode == 0
    figures["same_folder"] = same
    figures["local_over_ray"] = round(figures["local"]["wall_s"] / figures["ray"]["wall_s"], 2)
    figures["ideal_s"] = round(figures["local"]["requests"] / (args.concurrency / (args.latency_ms / 1000)), 2)
    figures["load_average_after"] = os.getloadavg()
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
