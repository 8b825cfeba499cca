"""`glan build --ray`: the discipline units on a local Ray cluster (started here on 127.0.0.1, two CPUs: two
workers) write the same folder as a local build, hold the endpoint's concurrency across both workers, and
survive a worker killed mid-run with only the requests it had in flight sent again."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from glan.cli import main
from tests.helpers import PATIENCE_S, wait_until
from tests.servers import REPO_ROOT, most_in_flight, start_openai_server

# The glan[ray] extra, which the README's test command installs. Imported by the cluster fixture, after the
# environment Ray reads at import is set.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs glan[ray]")

DISCIPLINES = ("Organic Chemistry", "Linear Algebra", "Genetics", "Optics", "Relativity", "Microeconomics")
CONCURRENCY = 3


def project(tmp: Path, **generation) -> Path:
    """A copy of the shipped taxonomy and prompts, with `generation` settings merged in."""
    shutil.copytree(REPO_ROOT / "prompts", tmp / "prompts")
    data = yaml.safe_load((REPO_ROOT / "taxonomy.yaml").read_text())
    data["generation"].update(generation)
    (tmp / "taxonomy.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return tmp / "taxonomy.yaml"


def build_args(taxonomy: Path, server, run_dir: Path, *extra) -> list[str]:
    return ["build", "--taxonomy", str(taxonomy), "--preset", "smoke", "--disciplines", ",".join(DISCIPLINES),
            "--model", "test-model", "--base-url", server.base_url, "--concurrency", str(CONCURRENCY),
            "--out", str(run_dir / "dist"), "--work-dir", str(run_dir / ".glan"), *extra]


def folder(out: Path) -> dict[str, bytes]:
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}


def parquet_files(out: Path) -> dict[str, bytes]:
    return {name: data for name, data in folder(out).items() if name.endswith(".parquet")}


def ray_workers(run_dir: Path) -> dict[str, int]:
    return json.loads((run_dir / ".glan" / "run_report.json").read_text())["ray_workers"]


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of one node with 2 CPUs on 127.0.0.1, no dashboard, a small object store."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's switch for a cluster on the loopback address
        env.setenv("RAY_AUTH_MODE", "token")  # Ray's default for a new cluster; its clients need it set too
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN"):  # the workers inherit this environment
            env.delenv(name, raising=False)
        import ray

        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
                 configure_logging=False)
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The same build in one process: the folder and the request bodies a Ray build must match."""
    tmp = tmp_path_factory.mktemp("local")
    taxonomy = project(tmp)
    with start_openai_server() as server:
        assert main(build_args(taxonomy, server, tmp / "run")) == 0
        bodies = sorted(record["body_sha256"] for record in server.log())
    return {"folder": folder(tmp / "run" / "dist"), "bodies": bodies, "taxonomy": taxonomy, "run": tmp / "run"}


@pytest.fixture(scope="module")
def on_ray(cluster, local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray")
    with start_openai_server(latency_ms=30) as server:
        address = cluster.get_runtime_context().gcs_address
        assert main(build_args(local["taxonomy"], server, tmp / "run", "--ray", address)) == 0
        return {"run": tmp / "run", "log": server.log()}


def test_a_ray_build_writes_the_folder_of_a_local_build_byte_for_byte(local, on_ray):
    assert folder(on_ray["run"] / "dist") == local["folder"]
    assert sorted(record["body_sha256"] for record in on_ray["log"]) == local["bodies"]  # each request sent once
    workers = ray_workers(on_ray["run"])
    assert len(workers) == 2 and sum(workers.values()) == len(DISCIPLINES) and all(workers.values())
    # The workers read the shared cache immutable: SQLite wrote nothing beside it.
    assert not list((on_ray["run"] / ".glan").glob("cache.sqlite-*"))


def test_two_workers_never_exceed_the_endpoint_concurrency(on_ray):
    assert most_in_flight(on_ray["log"]) == CONCURRENCY


def test_a_ray_build_over_a_local_work_dir_runs_nothing(local, tmp_path):
    """The executor decides where units run, not what they hold: a local build's units are Ray's too."""
    with start_openai_server() as server:
        assert main(build_args(local["taxonomy"], server, tmp_path)) == 0
        server.reset()
        assert main(build_args(local["taxonomy"], server, tmp_path, "--ray", "127.0.0.1:1")) == 0
        assert server.stats()["requests"] == 0


def _kill_a_worker_after(ray, server, requests: int, killed: dict) -> None:
    """Once the server has received `requests` requests, SIGKILL the process of one of the two Ray workers."""
    wait_until(lambda: server.stats()["requests"] >= requests, f"the server to receive {requests} requests")
    workers = [ray.get_actor(actor["name"], namespace=actor["namespace"])
               for actor in ray.util.list_named_actors(all_namespaces=True) if actor["name"].startswith("glan-worker-")]
    killed["pids"] = ray.get([worker.__ray_call__.remote(lambda worker: os.getpid()) for worker in workers])
    killed["at"] = time.monotonic()  # the server's clock too: CLOCK_MONOTONIC is the machine's
    os.kill(killed["pids"][0], signal.SIGKILL)


def test_a_worker_killed_mid_run_is_retried_and_resumes_from_its_cache(cluster, local, tmp_path):
    """`executor: ray` in the taxonomy, with the cluster this process is connected to."""
    taxonomy = project(tmp_path, executor="ray")
    killed: dict[str, float] = {}
    with start_openai_server(latency_ms=30) as server:
        killer = threading.Thread(target=_kill_a_worker_after,
                                  args=(cluster, server, len(local["bodies"]) // 3, killed))
        killer.start()
        try:
            assert main(build_args(taxonomy, server, tmp_path / "run")) == 0
        finally:
            killer.join()
        log = server.log()
    assert "at" in killed, "the build ended before a worker could be killed"
    # The rows; the folder's copy of the taxonomy (glan/taxonomy.yaml) says `executor: ray` here.
    assert parquet_files(tmp_path / "run" / "dist") == parquet_files(local["run"] / "dist")
    first_sent: dict[str, float] = {}
    repeated = []
    for record in log:
        if record["body_sha256"] in first_sent:
            repeated.append(record["body_sha256"])
        else:
            first_sent[record["body_sha256"]] = record["received"]
    assert sorted(first_sent) == sorted(set(local["bodies"]))
    # Sent again: at most what the killed worker had in flight, all sent before the kill.
    assert len(repeated) <= CONCURRENCY and all(first_sent[body] < killed["at"] for body in repeated)
    workers = ray_workers(tmp_path / "run")  # "address:pid" -> units it ran
    assert sum(workers.values()) == len(DISCIPLINES)
    assert any(int(worker.rsplit(":")[1]) not in killed["pids"] for worker in workers)  # the one Ray started again


def test_a_dead_endpoint_stops_a_ray_build_with_one_line_naming_it(cluster, tmp_path, capsys):
    """The endpoint drops every connection after 10 answers: the workers stop their units, the driver's last line
    names the endpoint, exit 1, and --out is not written."""
    taxonomy = project(tmp_path, limits={"dead_after_s": 1})
    with start_openai_server(down_from=10) as server:
        code = main(build_args(taxonomy, server, tmp_path, "--ray"))
    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"glan: the build is incomplete: the endpoint {server.base_url} has answered nothing for ")
    assert not (tmp_path / "dist").exists()


def test_ray_refuses_what_it_cannot_do_with_one_line(tmp_path, capsys, monkeypatch):
    taxonomy = project(tmp_path)
    base = ["build", "--taxonomy", str(taxonomy), "--preset", "smoke", "--disciplines", "Genetics", "--model", "m",
            "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "dist"), "--work-dir", str(tmp_path / "w")]
    cases = {("--ray", "--batch"): "glan: --ray: the Batch API does a build's work on OpenAI's side, not on a "
                                   "cluster. Drop --ray, or drop --batch (and `batch: true` in the taxonomy).",
             ("--ray", "--max-requests", "5"): "glan: --ray: --max-cost and --max-requests are counted by one process "
                                               "and cannot stop a cluster's workers exactly. Run without --ray to use "
                                               "a budget."}
    for flags, message in cases.items():
        assert main(base + list(flags)) == 2
        assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("glan: --ray")] == [message]
    # A fresh process: this one may have joined the test cluster already, and then uses it.
    unreachable = subprocess.run([sys.executable, "-m", "glan.cli", *base, "--ray", "127.0.0.1:1"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, timeout=PATIENCE_S)
    assert unreachable.returncode == 2
    assert unreachable.stderr.splitlines()[-1] == (
        "glan: --ray 127.0.0.1:1: cannot connect ([Errno 111] Connection refused). Give the HOST:PORT of the "
        "cluster's head (`ray start --head --port PORT`), and check that it is running.")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if glan[ray] were not installed
    assert main(base + ["--ray", "auto"]) == 2
    assert "glan: --ray: Ray is not installed. Install it with: pip install 'glan[ray]'" in \
        capsys.readouterr().err.splitlines()
    assert not (tmp_path / "dist").exists()


def test_executor_must_be_local_or_ray(tmp_path, capsys):
    taxonomy = project(tmp_path, executor="dask")
    line = next(number for number, text in enumerate(taxonomy.read_text().splitlines(), 1) if "executor:" in text)
    assert main(["taxonomy", "validate", str(taxonomy)]) == 2
    assert (f"glan: {taxonomy}:{line}: generation.executor: expected 'local' or 'ray', got text (\"dask\"). "
            "Use one of those values.") in capsys.readouterr().err.splitlines()


def test_a_killed_driver_is_resumed_by_running_the_same_command(cluster, local, tmp_path):
    with start_openai_server(latency_ms=30) as server:
        address = cluster.get_runtime_context().gcs_address
        command = [sys.executable, "-m", "glan.cli",
                   *build_args(local["taxonomy"], server, tmp_path, "--ray", address)]
        driver = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: server.stats()["requests"] >= len(local["bodies"]) // 3,
                       "a third of the build's requests to reach the server", process=driver)
        finally:
            driver.kill()
            driver.wait()
        # At once: the new driver waits for Ray to end the killed one's workers, which may still be sending.
        assert subprocess.run(command, cwd=REPO_ROOT, stderr=subprocess.DEVNULL, timeout=PATIENCE_S).returncode == 0
        bodies = [record["body_sha256"] for record in server.log()]
    assert folder(tmp_path / "dist") == local["folder"]
    assert set(bodies) == set(local["bodies"])
    assert len(bodies) - len(local["bodies"]) <= CONCURRENCY  # sent again: at most what was in flight


def test_leases_never_add_up_to_more_than_the_concurrency_whatever_the_timing():
    """Three workers with changing demand, each sync split in two (the report, then the lease applied later, while
    the worker goes on under its old lease and the others sync): the requests in flight never exceed the
    endpoint's concurrency, and every worker with demand gets slots."""
    import random

    from glan.execute.ray.leases import EndpointLimits

    concurrency, rng = 7, random.Random(11)
    limits = EndpointLimits(concurrency)
    lease, in_flight, wanted, answer = {w: 0 for w in "abc"}, {w: 0 for w in "abc"}, {w: 0 for w in "abc"}, {}
    served = set()
    for step in range(20_000):
        worker = rng.choice("abc")
        event = rng.random()
        if event < 0.05:
            wanted[worker] = rng.choice([0, 1, 3, 10])
        elif event < 0.4 and in_flight[worker] < min(lease[worker], wanted[worker]):
            in_flight[worker] += 1
            served.add(worker)
        elif event < 0.7 and in_flight[worker]:
            in_flight[worker] -= 1
        elif worker in answer:
            lease[worker] = answer.pop(worker)
        else:
            answer[worker], _ = limits.sync(worker, lease[worker], in_flight[worker], wanted[worker], 0, 0,
                                            now=step * 0.01, growing=True)
        assert sum(in_flight.values()) <= concurrency
    assert served == set("abc")
