"""Whole builds as a user runs them (not a pytest test):

    .venv/bin/python -m tests.benchmarks.scale_bench [--questions 10 30 100] [--disciplines-limit K]
        [--skip scale noop extend throughput twins paper] [--throughput-questions 10] [--paper-disciplines 4 8 16]
        [--json PATH] [--repo PATH]

Every build is `python -m glan.cli build` in a subprocess under `/usr/bin/time -v`, run from --repo
against the OpenAI-protocol test server, which runs in its own process: the CPU and peak RSS are the
glan process's alone, and the server counts the requests. Each build gets a copy of the repo's
taxonomy.yaml and prompts/ with a `bench` preset (2 subject samples, N questions per subject, every other
setting at its default). Scenarios, for each N:
  scale       a fresh build at 0 latency: requests, rows, wall, CPU per request, peak RSS
  noop        the same build again, everything cached
  extend      add one discipline and rebuild (it must cost exactly its own requests), then remove it
              again (the folder's rows must be exactly the earlier ones)
and once each, at --throughput-questions:
  throughput  a fresh build at --concurrency 128 against 100 ms latency, as a share of the ideal rate
  twins       the same, with every question the server writes a near-twin of every other (one template with 1 to 3
              words changed, from a pool of TWIN_POOL served in turn): each unit's dedup meets its worst case while
              the other units' requests go on
  paper       paper-sized units: --paper-disciplines disciplines at the shipped generation numbers (the `paper`
              preset's: 10 subject samples of 10-20, 10-30 sessions, 300 questions per subject) and answers of about
              300 words, at 0 latency: peak RSS, CPU per request, wall, and the disk the work dir and the folder
              take, with the wall and the disk extrapolated to the full paper preset (every discipline)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from huggingface_hub.repocard import metadata_load

from tests.benchmarks.dedup_bench import near_twins
from tests.servers import REPO_ROOT, start_openai_server
from tests.servers.schema_fill import sentence

NEW_DISCIPLINE = {"name": "Acoustics",
                  "description": "Sound waves, vibration, resonance, room acoustics and the physics of hearing."}
NEW_ID = "acoustics"
THROUGHPUT_CONCURRENCY, THROUGHPUT_LATENCY_S = 128, 0.1
SCENARIOS = ("scale", "noop", "extend", "throughput", "twins", "paper")
PAPER_ANSWER_WORDS = 300
TWIN_POOL = 100_000  # more than any unit's questions: a unit gets no exact repeats, only near-twins


def glan_build(repo: Path, server, project: Path, work: Path, out: Path, *flags: str) -> dict:
    """One `glan build` of project/taxonomy.yaml under /usr/bin/time -v; its figures and the requests the
    server received."""
    command = [sys.executable, "-m", cli_module(repo), "build", "--taxonomy", str(project / "taxonomy.yaml"),
               "--preset", "bench", "--model", "test-model", "--base-url", server.base_url,
               "--work-dir", str(work), "--out", str(out), "--yes", *flags]
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN")}
    server.reset()
    with tempfile.NamedTemporaryFile("r") as timing:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", "-o", timing.name, *command], cwd=repo, env=environment,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        figures = dict(line.strip().rsplit(": ", 1) for line in timing if ": " in line)
    if done.returncode:
        sys.exit(f"{shlex.join(command)}\nexited {done.returncode}:\n{done.stderr[-3000:]}")
    cpu = float(figures["User time (seconds)"]) + float(figures["System time (seconds)"])
    requests = server.stats()["requests"]
    return {"command": shlex.join(command), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "cpu_ms_per_request": round(1000 * cpu / requests, 3) if requests else None,
            "peak_rss_mb": round(int(figures["Maximum resident set size (kbytes)"]) / 1024), "requests": requests}


def cli_module(repo: Path) -> str:
    """The command line of the checkout at `repo`: `glan.cli`, or `builder.cli` in one from before glan was imported
    as `glan` (run from the checkout, so that its own package is the one imported)."""
    return "glan.cli" if 'glan = "glan.cli:main"' in (repo / "pyproject.toml").read_text() else "builder.cli"


def write_project(repo: Path, project: Path, questions: int | None, limit: int | None) -> None:
    """A copy of the repo's taxonomy (its first `limit` disciplines) and prompts, with only a `bench` preset: 2 subject
    samples and `questions` per subject, or with questions None every generation number the taxonomy's (the paper's)."""
    taxonomy = yaml.safe_load((repo / "taxonomy.yaml").read_text())
    if limit is not None:
        for field in taxonomy["fields"]:
            for subfield in field["subfields"]:
                subfield["disciplines"] = subfield["disciplines"][:limit]
                limit -= len(subfield["disciplines"])
            field["subfields"] = [subfield for subfield in field["subfields"] if subfield["disciplines"]]
        taxonomy["fields"] = [field for field in taxonomy["fields"] if field["subfields"]]
    # The shipped presets go: they are unused, and a trimmed taxonomy may lack the disciplines they name. No
    # benchmark list: the shipped one is read from the Hub, out of reach here (quality_bench measures it).
    sizes = {} if questions is None else {"subjects": {"samples": 2}, "questions": {"per_subject": questions}}
    taxonomy["presets"] = {"bench": {**sizes, "quality": {"decontamination": {"benchmarks": []}}}}
    project.mkdir(parents=True)
    (project / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy, sort_keys=False, allow_unicode=True))
    shutil.copytree(repo / "prompts", project / "prompts")


def discipline_count(project: Path) -> int:
    taxonomy = yaml.safe_load((project / "taxonomy.yaml").read_text())
    return sum(len(subfield["disciplines"]) for field in taxonomy["fields"] for subfield in field["subfields"])


def edit_taxonomy(project: Path, add: bool) -> None:
    """Append NEW_DISCIPLINE to the first sub-field (or remove it) and bump the minor version, as a user would."""
    path = project / "taxonomy.yaml"
    taxonomy = yaml.safe_load(path.read_text())
    disciplines = taxonomy["fields"][0]["subfields"][0]["disciplines"]
    disciplines[:] = [*disciplines, NEW_DISCIPLINE] if add else [d for d in disciplines if d != NEW_DISCIPLINE]
    major, minor, _ = str(taxonomy["version"]).split(".")
    taxonomy["version"] = f"{major}.{int(minor) + 1}.0"
    path.write_text(yaml.safe_dump(taxonomy, sort_keys=False, allow_unicode=True))


def row_count(out: Path, config: str) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in out.glob(f"{config}/*.parquet"))


def row_digests(out: Path) -> dict[str, Counter]:
    """{"config/split": Counter of (discipline_id, row digest)}, the splits' files as the card lists them."""
    digests = {}
    for config in metadata_load(out / "README.md")["configs"]:
        for split in config["data_files"]:
            rows = Counter()
            for path in sorted(out.glob(split["path"])):
                for batch in pq.ParquetFile(path).iter_batches():
                    for row in batch.to_pylist():
                        text = json.dumps(row, sort_keys=True, default=str).encode()
                        rows[row["discipline_id"], hashlib.blake2b(text, digest_size=16).digest()] += 1
            digests[f"{config['config_name']}/{split['split']}"] = rows
    return digests


def scale(repo: Path, server, project: Path) -> dict:
    run = glan_build(repo, server, project, project / ".glan", project / "dist")
    return {**run, "question_rows": row_count(project / "dist", "questions"),
            "instruction_rows": row_count(project / "dist", "instructions")}


def noop(repo: Path, server, project: Path) -> dict:
    return glan_build(repo, server, project, project / ".glan", project / "dist")


def extend(repo: Path, server, project: Path, full_build_wall_s: float) -> dict:
    before = row_digests(project / "dist")
    edit_taxonomy(project, add=True)
    with start_openai_server() as alone_server:
        alone = glan_build(repo, alone_server, project, project / "alone.glan", project / "alone.dist",
                           "--disciplines", NEW_ID)
        alone_bodies = Counter(record["body_sha256"] for record in alone_server.log())
    added = glan_build(repo, server, project, project / ".glan", project / "dist")
    added_bodies = Counter(record["body_sha256"] for record in server.log())
    with_it = row_digests(project / "dist")
    edit_taxonomy(project, add=False)
    removed = glan_build(repo, server, project, project / ".glan", project / "dist")
    others = {split: Counter({key: n for key, n in rows.items() if key[0] != NEW_ID})
              for split, rows in with_it.items()}
    return {"alone": alone, "added": added, "removed": removed,
            "same_requests_as_alone": added_bodies == alone_bodies,
            "wall_share_of_full_build": round(added["wall_s"] / full_build_wall_s, 4),
            "added_rows": sum(n for rows in with_it.values() for key, n in rows.items() if key[0] == NEW_ID),
            "others_unchanged_when_added": others == before,
            "rows_restored_by_removal": row_digests(project / "dist") == before}


def throughput(repo: Path, project: Path, question_pool: list[str] | None = None) -> dict:
    with start_openai_server(latency_ms=THROUGHPUT_LATENCY_S * 1000) as server:
        if question_pool:
            server.configure(question_pool=question_pool)
        load_before = load_average()
        run = glan_build(repo, server, project, project / ".glan", project / "dist",
                         "--concurrency", str(THROUGHPUT_CONCURRENCY))
    ideal = round(THROUGHPUT_CONCURRENCY / THROUGHPUT_LATENCY_S)
    rate = run["requests"] / run["wall_s"]
    return {**run, "requests_per_s": round(rate, 1), "ideal_per_s": ideal, "share_of_ideal": round(rate / ideal, 4),
            "load": f"{load_before[0]} -> {load_average()[0]}"}


def paper(repo: Path, project: Path, answers: list[str]) -> dict:
    with start_openai_server() as server:
        server.configure(answer_pool=answers)
        load_before = load_average()
        run = glan_build(repo, server, project, project / ".glan", project / "dist")
    return {**run, "instruction_rows": row_count(project / "dist", "instructions"),
            "work_dir_mb": round(disk_bytes(project / ".glan") / 2**20),
            "folder_mb": round(disk_bytes(project / "dist") / 2**20),
            "load": f"{load_before[0]} -> {load_average()[0]}"}


def paper_answers(count: int = 1_000) -> list[str]:
    """Answers of about PAPER_ANSWER_WORDS words, all different (they compress as prose does, not as repeats)."""
    rng = random.Random(0)
    texts = []
    for _ in range(count):
        words: list[str] = []
        while len(words) < PAPER_ANSWER_WORDS:
            words += sentence(rng).split()
        texts.append(" ".join(words))
    return texts


def disk_bytes(path: Path) -> int:
    return sum(entry.stat().st_blocks * 512 for entry in path.rglob("*") if entry.is_file())


RUN_COLUMNS = [("wall s", "wall_s"), ("CPU s", "cpu_s"), ("CPU ms/req", "cpu_ms_per_request"),
               ("peak RSS MB", "peak_rss_mb")]


def table(title: str, columns: list[tuple[str, str]], rows: list[dict], targets: list[tuple[str, bool]]) -> None:
    """columns: (header, key) of each row's values; targets: (what and how far, met); then the commands run."""
    def cell(key: str, value) -> str:
        if key.startswith("share") or key.endswith("share_of_full_build"):
            return f"{value:.1%}"
        return "-" if value is None else f"{value:,}" if type(value) in (int, float) else str(value)

    lines = [[header for header, _ in columns]] + [[cell(key, row[key]) for _, key in columns] for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(columns))]
    print(f"\n## {title}")
    for line in lines:
        print("  ".join(text.rjust(width) for text, width in zip(line, widths)))
    for target, met in targets:
        print(f"  target: {target} -> {'ok' if met else 'MISSED'}")
    runs = [run for row in rows for run in (row, *(value for value in row.values() if isinstance(value, dict)))]
    for command in dict.fromkeys(run["command"] for run in runs if "command" in run):
        print(f"  $ {command}")


def show_scale(rows: list[dict]) -> None:
    first, last = rows[0], rows[-1]
    growth = last["peak_rss_mb"] / first["peak_rss_mb"]
    worst = max(row["cpu_ms_per_request"] for row in rows)
    targets = [(f"peak RSS at N={last['N']} under 1,024 MB: {last['peak_rss_mb']:,} MB", last["peak_rss_mb"] < 1024),
               (f"client CPU at most 0.5 ms per request: worst {worst} ms", worst <= 0.5)]
    if len(rows) > 1:
        targets.insert(1, (f"peak RSS at N={last['N']} under 1.3x that at N={first['N']}: {growth:.2f}x", growth < 1.3))
    table("scale: a fresh build at 0 latency",
          [("N", "N"), ("disciplines", "disciplines"), ("requests", "requests"), ("question rows", "question_rows"),
           ("instruction rows", "instruction_rows"), *RUN_COLUMNS], rows, targets)


def show_noop(rows: list[dict]) -> None:
    last = rows[-1]
    table("noop: the same build again, everything cached", [("N", "N"), ("requests", "requests"), *RUN_COLUMNS], rows,
          [(f"no requests and under 10 s (the issue's figure is at N=100): {last['wall_s']} s at N={last['N']}",
            all(row["requests"] == 0 for row in rows) and last["wall_s"] < 10)])


def show_extend(rows: list[dict]) -> None:
    flat = [{**row, "alone_requests": row["alone"]["requests"], "added_requests": row["added"]["requests"],
             "added_wall_s": row["added"]["wall_s"], "removal_requests": row["removed"]["requests"]} for row in rows]
    last = flat[-1]
    table(f"extend: add `{NEW_ID}` to the built work dir and rebuild, then remove it and rebuild",
          [("N", "N"), ("alone requests", "alone_requests"), ("added requests", "added_requests"),
           ("same bodies", "same_requests_as_alone"), ("added wall s", "added_wall_s"),
           ("share of full", "wall_share_of_full_build"), ("added rows", "added_rows"),
           ("others unchanged", "others_unchanged_when_added"), ("removal requests", "removal_requests"),
           ("rows restored", "rows_restored_by_removal")], flat,
          [("adding sends exactly the requests of the discipline built alone, other rows unchanged; removing sends "
            "none and restores the rows", all(row["same_requests_as_alone"] and row["others_unchanged_when_added"]
                                              and row["rows_restored_by_removal"] and not row["removal_requests"]
                                              for row in flat)),
           (f"added wall under 3% of the full build's (the issue's figure is at N=100): "
            f"{last['wall_share_of_full_build']:.1%} at N={last['N']}", last["wall_share_of_full_build"] < 0.03)])


def show_throughput(row: dict, title: str = "throughput") -> None:
    table(f"{title}: --concurrency {THROUGHPUT_CONCURRENCY} against {THROUGHPUT_LATENCY_S * 1000:.0f} ms latency",
          [("N", "N"), ("disciplines", "disciplines"), ("requests", "requests"), ("req/s", "requests_per_s"),
           ("ideal req/s", "ideal_per_s"), ("share", "share_of_ideal"), *RUN_COLUMNS, ("load (1 min)", "load")], [row],
          [(f"at least 85% of the ideal rate: {row['share_of_ideal']:.1%}", row["share_of_ideal"] >= 0.85)])


def show_twins(row: dict) -> None:
    show_throughput(row, "twins: every question a near-twin of the others")


def show_paper(rows: list[dict], all_disciplines: int) -> None:
    first, last = rows[0], rows[-1]
    growth = last["peak_rss_mb"] / first["peak_rss_mb"]
    worst = max(row["cpu_ms_per_request"] for row in rows)
    for row in rows:
        scale_up = all_disciplines / row["disciplines"]
        row["full_wall_h"] = round(row["wall_s"] * scale_up / 3600, 1)
        row["full_work_dir_gb"] = round(row["work_dir_mb"] * scale_up / 1024, 1)
        row["full_folder_gb"] = round(row["folder_mb"] * scale_up / 1024, 1)
    targets = [(f"peak RSS under 1,024 MB in every case: at most {max(row['peak_rss_mb'] for row in rows):,} MB",
                all(row["peak_rss_mb"] < 1024 for row in rows)),
               (f"client CPU at most 0.5 ms per request: worst {worst} ms", worst <= 0.5)]
    if len(rows) > 1:
        targets.insert(1, (f"peak RSS at {last['disciplines']} disciplines within 1.2x that at {first['disciplines']}: "
                           f"{growth:.2f}x", growth <= 1.2))
    table(f"paper: paper-sized units at 0 latency, answers of about {PAPER_ANSWER_WORDS} words; 'full' extrapolates "
          f"linearly to all {all_disciplines} disciplines",
          [("disciplines", "disciplines"), ("requests", "requests"), ("instruction rows", "instruction_rows"),
           *RUN_COLUMNS, ("work dir MB", "work_dir_mb"), ("folder MB", "folder_mb"), ("full wall h", "full_wall_h"),
           ("full work dir GB", "full_work_dir_gb"), ("full folder GB", "full_folder_gb"), ("load (1 min)", "load")],
          rows, targets)


def load_average() -> list[float]:
    """Over 1, 5 and 15 minutes: other work on the machine skews every figure here."""
    return [round(load, 2) for load in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, nargs="+", default=[10, 30, 100], help="questions per subject (N)")
    parser.add_argument("--disciplines-limit", type=int, help="only the taxonomy's first K disciplines")
    parser.add_argument("--skip", nargs="+", choices=SCENARIOS, default=[],
                        help="scenarios to leave out (noop and extend rebuild scale's work dir, so skipping scale "
                             "skips them too)")
    parser.add_argument("--throughput-questions", type=int, default=10, help="N of the throughput build")
    parser.add_argument("--paper-disciplines", type=int, nargs="+", default=[4, 8, 16],
                        help="disciplines of the paper-unit builds")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="the glan checkout to run (default: this one)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    repo = args.repo.resolve()
    wanted = set(SCENARIOS) - set(args.skip) - ({"noop", "extend"} if "scale" in args.skip else set())
    results = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": load_average()},
               "bench_command": shlex.join(["python", "-m", "tests.benchmarks.scale_bench", *sys.argv[1:]]),
               "scale": [], "noop": [], "extend": [], "throughput": None, "twins": None, "paper": []}

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="scale_bench_") as temp, start_openai_server() as server:
        for questions in args.questions if "scale" in wanted else []:
            project = Path(temp) / f"n{questions}"
            write_project(repo, project, questions, args.disciplines_limit)
            log(f"N={questions}: scale")
            full = {"N": questions, "disciplines": discipline_count(project), **scale(repo, server, project)}
            results["scale"].append(full)
            if "noop" in wanted:
                log(f"N={questions}: noop")
                results["noop"].append({"N": questions, **noop(repo, server, project)})
            if "extend" in wanted:
                log(f"N={questions}: extend")
                results["extend"].append({"N": questions, **extend(repo, server, project, full["wall_s"])})
            shutil.rmtree(project)
            save()
        if "throughput" in wanted:
            project = Path(temp) / "throughput"
            write_project(repo, project, args.throughput_questions, args.disciplines_limit)
            log(f"N={args.throughput_questions}: throughput")
            results["throughput"] = {"N": args.throughput_questions, "disciplines": discipline_count(project),
                                     **throughput(repo, project)}
        if "twins" in wanted:
            project = Path(temp) / "twins"
            write_project(repo, project, args.throughput_questions, args.disciplines_limit)
            log(f"N={args.throughput_questions}: twins")
            pool = [row["question"] for row in near_twins(TWIN_POOL)]
            results["twins"] = {"N": args.throughput_questions, "disciplines": discipline_count(project),
                                **throughput(repo, project, pool)}
        if "paper" in wanted:
            answers = paper_answers()
            for disciplines in args.paper_disciplines:
                project = Path(temp) / f"paper{disciplines}"
                write_project(repo, project, None, disciplines)
                log(f"paper: {disciplines} disciplines")
                results["paper"].append({"disciplines": discipline_count(project),
                                         **paper(repo, project, answers)})
                shutil.rmtree(project)
                save()
    results["machine"]["load_average_at_end"] = load_average()
    save()
    for scenario, show in (("scale", show_scale), ("noop", show_noop), ("extend", show_extend),
                           ("throughput", show_throughput), ("twins", show_twins)):
        if results[scenario]:
            show(results[scenario])
    if results["paper"]:
        show_paper(results["paper"], discipline_count(repo))
    machine = results["machine"]
    print(f"\nload average (1, 5, 15 min) at start {machine['load_average_at_start']}, "
          f"at end {machine['load_average_at_end']}; {machine['cpus']} CPUs")


if __name__ == "__main__":
    main()
