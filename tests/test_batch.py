"""`glan build --batch` against the test server's Files + Batch API: same rows and cache keys as an
online build, resumable after a kill without resubmitting, and every request accounted for when
batches expire or fail lines."""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest
import yaml
from openai import OpenAI

from glan.cli import main
from glan.llm import batch as batch_module
from glan.llm.accounting import Accounting, ModelPrice
from glan.llm.batch import BatchRunner, BatchStore
from tests.cached import responses
from tests.helpers import PATIENCE_S, wait_until
from tests.servers import REPO_ROOT, start_openai_server
from tests.servers.openai_server import output_of
from tests.servers.wire import canonical

DISCIPLINES = "Organic Chemistry,Linear Algebra"
FAST = {"batch_delay_s": 0.2}


class Killed(BaseException):
    """Stands in for SIGKILL at an exact point of an in-process build."""


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory):
    """The shipped taxonomy plus a preset that batches every stage with `batch_fallback: batch`,
    polling every 0.2 s."""
    root = tmp_path_factory.mktemp("taxonomy")
    shutil.copytree(REPO_ROOT / "prompts", root / "prompts")
    data = yaml.safe_load((REPO_ROOT / "taxonomy.yaml").read_text())
    smoke = data["presets"]["smoke"]
    data["presets"]["smoke-rebatch"] = {
        **smoke, "limits": {**smoke.get("limits", {}), "batch_poll_s": 0.2},
        **{stage: {**smoke.get(stage, {}), "batch": True, "batch_fallback": "batch"}
           for stage in ("subjects", "syllabus", "questions", "answers")}}
    (root / "taxonomy.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "taxonomy.yaml"


def args(taxonomy, server, run_dir, *extra):
    return ["build", "--taxonomy", str(taxonomy), "--preset", "smoke", "--disciplines", DISCIPLINES,
            "--model", "test-model", "--base-url", server.base_url, "--out", str(run_dir / "dist"),
            "--work-dir", str(run_dir / ".glan"), *extra]


def build(taxonomy, server, run_dir, *extra):
    return main(args(taxonomy, server, run_dir, *extra))


def parquet(run_dir):
    out = run_dir / "dist"
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted(out.rglob("*.parquet"))}


def cache_keys(run_dir):
    return {key for (key,) in responses(run_dir / ".glan", "key")}


def responses_per_stage(run_dir):
    return dict(Counter(stage for (stage,) in responses(run_dir / ".glan", "stage")))


def server_batches(server):
    """[(batch, input lines, output + error lines)] oldest first, read back through the openai client."""
    api = OpenAI(base_url=server.base_url, api_key="test")

    def lines(file_id):
        return [json.loads(line) for line in api.files.content(file_id).text.splitlines()] if file_id else []

    return [(batch, lines(batch.input_file_id), lines(batch.output_file_id) + lines(batch.error_file_id))
            for batch in reversed(list(api.batches.list(limit=100)))]


def body_sha256(line):
    return hashlib.sha256(canonical(line["body"])).hexdigest()


@pytest.fixture(scope="module")
def online(taxonomy, tmp_path_factory):
    """The reference: an online build, its rows, cache keys and request count."""
    run_dir = tmp_path_factory.mktemp("online")
    with start_openai_server() as server:
        assert build(taxonomy, server, run_dir) == 0
        requests = server.stats()["requests"]
    return {"parquet": parquet(run_dir), "keys": cache_keys(run_dir), "requests": requests,
            "per_stage": responses_per_stage(run_dir)}


def test_batch_build_equals_online_build_and_uploads_exactly_the_uncached_requests(
        taxonomy, online, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(batch_module, "MAX_FILE_REQUESTS", 10)  # several files per stage
    with start_openai_server(**FAST, batch_max_requests=10) as server:  # a larger file would fail its batch
        assert build(taxonomy, server, tmp_path, "--configs", "subjects") == 0  # online: subjects cached
        cached = cache_keys(tmp_path)
        server.reset()
        assert build(taxonomy, server, tmp_path, "--batch") == 0
        assert server.stats()["requests"] == 0  # nothing online
        batches = server_batches(server)

    uploaded = [line["custom_id"] for _, inputs, _ in batches for line in inputs]
    assert len(online["keys"]) == online["requests"]
    assert len(uploaded) == len(set(uploaded)) == online["requests"] - len(cached)
    assert set(uploaded) == online["keys"] - cached
    assert cache_keys(tmp_path) == online["keys"]
    assert parquet(tmp_path) == online["parquet"]
    assert all(len(inputs) <= 10 for _, inputs, _ in batches)
    assert all(batch.status == "completed" and batch.endpoint == "/v1/chat/completions"
               and batch.completion_window == "24h" for batch, _, _ in batches)
    # Stages run one after another: a stage's batches are all created after the previous stage's.
    stages = [_stage(inputs) for _, inputs, _ in batches]
    assert stages == sorted(stages, key=["syllabus", "questions", "answers"].index)
    assert Counter(stages) == {stage: -(-count // 10) for stage, count in online["per_stage"].items()
                               if stage != "subjects"}  # files of at most 10 requests

    capsys.readouterr()
    assert main(["batches", "--work-dir", str(tmp_path / ".glan")]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 1 + len(batches)
    for (batch, inputs, _), line in zip(batches, listing[1:]):
        assert line.split()[:7] == [batch.id, _stage(inputs), "completed", str(len(inputs)), str(len(inputs)),
                                    "0", "yes"]
    assert main(["batches", "--json", "--work-dir", str(tmp_path / ".glan")]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [{key: row[key] for key in ("batch", "stage", "status", "requests", "completed", "failed", "collected")}
            for row in listed] == [
        {"batch": batch.id, "stage": _stage(inputs), "status": "completed", "requests": len(inputs),
         "completed": len(inputs), "failed": 0, "collected": True} for batch, inputs, _ in batches]
    assert [row["created"][:16].replace("T", " ") for row in listed] == [line.split()[7] + " " + line.split()[8]
                                                                         for line in listing[1:]]


def _stage(inputs):
    """The stage a batch served, from what its first line asks for (the test server's output_of)."""
    return {"SubjectList": "subjects", "Syllabus": "syllabus", "question": "questions",
            "answer": "answers"}[output_of(inputs[0]["body"])]


def test_a_killed_build_resumes_its_saved_batch_without_submitting_it_again(taxonomy, online, tmp_path):
    with start_openai_server(batch_delay_s=2 * PATIENCE_S) as server:  # batches run until FAST lets them end
        api = OpenAI(base_url=server.base_url, api_key="test")
        first = subprocess.Popen([sys.executable, "-m", "glan.cli", *args(taxonomy, server, tmp_path, "--batch")],
                                 cwd=REPO_ROOT)
        wait_until(lambda: api.batches.list().data, "the build to create its first batch", process=first)
        first.send_signal(signal.SIGKILL)
        first.wait()
        [(submitted, _, _)] = server_batches(server)
        assert submitted.status in ("validating", "in_progress")  # killed while the batch was running

        server.configure(**FAST)
        assert build(taxonomy, server, tmp_path, "--batch") == 0
        batches = server_batches(server)
        assert server.stats()["requests"] == 0

    assert [_stage(inputs) for _, inputs, _ in batches] == ["subjects", "syllabus", "questions", "answers"]
    assert batches[0][0].id == submitted.id
    uploaded = [line["custom_id"] for _, inputs, _ in batches for line in inputs]
    assert len(uploaded) == len(set(uploaded)) == online["requests"]
    assert parquet(tmp_path) == online["parquet"]


@pytest.mark.parametrize("window", ["after the upload", "after the batch was created"])
def test_a_kill_before_the_batch_id_was_saved_creates_no_second_batch(taxonomy, online, tmp_path, monkeypatch, window):
    create, update = BatchRunner._create, BatchStore.update

    def killed_after_upload(self, api, batch):
        raise Killed

    def killed_before_saving_the_id(self, batch):
        if batch.batch_id:
            raise Killed
        update(self, batch)

    if window == "after the upload":
        monkeypatch.setattr(BatchRunner, "_create", killed_after_upload)
    else:
        monkeypatch.setattr(BatchStore, "update", killed_before_saving_the_id)
    with start_openai_server(**FAST) as server:
        with pytest.raises(Killed):
            build(taxonomy, server, tmp_path, "--batch", "--configs", "subjects")
        monkeypatch.setattr(BatchRunner, "_create", create)
        monkeypatch.setattr(BatchStore, "update", update)
        assert build(taxonomy, server, tmp_path, "--batch", "--configs", "subjects") == 0
        batches = server_batches(server)
        chat_requests = server.log()
    assert len(batches) == 1 and batches[0][0].status == "completed"
    assert batches[0][0].input_file_id == "file-000001"  # uploaded once: the saved file id was reused
    assert chat_requests == []
    assert {key: value for key, value in parquet(tmp_path).items() if key.startswith("subjects/")} == \
        {key: value for key, value in online["parquet"].items() if key.startswith("subjects/")}


@pytest.mark.parametrize("fallback", ["online", "batch"])
def test_errors_and_an_expired_batch_fall_back_and_every_request_is_accounted_for(
        taxonomy, online, tmp_path, monkeypatch, fallback):
    collect = BatchRunner._collect
    preset = "smoke" if fallback == "online" else "smoke-rebatch"
    # Rebatched lines get MAX_BATCH_TRIES batches: at 10% server errors, every line here is answered in time.
    error_rate = 0.3 if fallback == "online" else 0.1
    with start_openai_server(batch_delay_s=0.2, batch_error_rate=error_rate, batch_expire=True) as server:

        def only_the_first_batch_expires(self, api, saved, remote):
            server.configure(batch_expire=False)
            collect(self, api, saved, remote)

        monkeypatch.setattr(BatchRunner, "_collect", only_the_first_batch_expires)
        extra = ["--preset", preset] + (["--batch"] if fallback == "online" else [])
        assert build(taxonomy, server, tmp_path, *extra) == 0
        batches = server_batches(server)
        online_bodies = Counter(record["body_sha256"] for record in server.log())

    assert [batch.status for batch, _, _ in batches].count("expired") == 1
    answered, unanswered = Counter(), Counter()
    for batch, inputs, results in batches:
        assert sorted(line["custom_id"] for line in results) == sorted(line["custom_id"] for line in inputs)
        bodies = {line["custom_id"]: body_sha256(line) for line in inputs}
        for line in results:
            ok = line["response"] is not None and line["response"]["status_code"] == 200
            (answered if ok else unanswered)[line["custom_id"]] += 1
            if not ok and fallback == "online":
                assert online_bodies[bodies[line["custom_id"]]] == 1  # sent online once, same body
    assert unanswered and max(answered.values()) == 1
    if fallback == "online":
        assert sum(online_bodies.values()) == len(unanswered)  # nothing else went online
        assert set(answered) | set(unanswered) == online["keys"]
    else:
        assert not online_bodies
        assert set(answered) == online["keys"]  # every failed line was answered by a later batch
        assert set(unanswered) <= set(answered)
    assert cache_keys(tmp_path) == online["keys"]
    assert parquet(tmp_path) == online["parquet"]


def test_batches_lists_and_cancels_the_saved_batches(taxonomy, tmp_path, monkeypatch, capsys):
    def killed_while_waiting(self, batches):
        raise Killed

    monkeypatch.setattr(BatchRunner, "_wait", killed_while_waiting)
    with start_openai_server(batch_delay_s=60) as server:
        with pytest.raises(Killed):
            build(taxonomy, server, tmp_path, "--batch", "--configs", "subjects")
        work_dir = str(tmp_path / ".glan")
        capsys.readouterr()
        assert main(["batches", "--work-dir", work_dir]) == 0
        assert capsys.readouterr().out.splitlines()[1].split()[:7] == \
            ["batch_000001", "subjects", "validating", "4", "0", "0", "no"]
        assert main(["batches", "cancel", "--work-dir", work_dir]) == 0
        assert capsys.readouterr().out.splitlines()[1].split()[2] == "cancelling"
        [(batch, _, _)] = server_batches(server)
        assert batch.status == "cancelling"
        assert main(["batches", "cancel", "batch_999999", "--work-dir", work_dir]) == 2
        assert "batch_999999: not a batch saved in" in capsys.readouterr().err


def test_batch_cost_is_half_the_online_cost():
    accounting = Accounting({"gpt-4o-mini": ModelPrice(0.15, 0.6, 0.15)})
    assert accounting.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert accounting.cost("gpt-4o-mini", 1_000_000, 1_000_000, batch=True) == pytest.approx(0.375)


def test_an_endpoint_without_access_to_the_batch_api_is_a_clear_error(taxonomy, tmp_path, capsys):
    with start_openai_server(require_api_key="sk-right") as server:
        assert build(taxonomy, server, tmp_path, "--batch", "--configs", "subjects") == 2
    error = capsys.readouterr().err
    assert f"glan: {server.base_url}: Batch API file upload failed: Error code: 401" in error
    assert "Incorrect API key provided" in error and "or build without --batch" in error


def test_estimate_prices_batch_stages_at_half_and_submits_nothing(taxonomy, tmp_path, capsys):
    def total_cost(*extra):
        capsys.readouterr()
        argv = args(taxonomy, server, tmp_path, "--price", "test-model=1,2", *extra)[1:]
        del argv[argv.index("--out"):argv.index("--out") + 2]  # estimate writes no folder, so takes no --out
        assert main(["estimate", *argv]) == 0
        [total] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("total")]
        return float(total.split()[-1])

    with start_openai_server() as server:
        online_cost, batch_cost = total_cost(), total_cost("--batch")
        assert server_batches(server) == [] and server.stats()["requests"] == 0
    assert online_cost > 0 and batch_cost == pytest.approx(online_cost / 2, abs=1e-4)


def test_a_rerun_with_another_base_url_waits_on_the_endpoint_that_holds_the_batch(taxonomy, online, tmp_path,
                                                                                    monkeypatch, capsys):
    wait = BatchRunner._wait

    def killed_while_waiting(self, batches):
        raise Killed

    monkeypatch.setattr(BatchRunner, "_wait", killed_while_waiting)
    with start_openai_server(**FAST) as first, start_openai_server(**FAST) as second:
        with pytest.raises(Killed):
            build(taxonomy, first, tmp_path, "--batch")
        monkeypatch.setattr(BatchRunner, "_wait", wait)
        [(submitted, inputs, _)] = server_batches(first)
        assert build(taxonomy, second, tmp_path, "--batch") == 0
        moved = server_batches(second)
        assert [batch.status for batch, _, _ in server_batches(first)] == ["completed"]  # polled where it lives
        assert first.stats()["requests"] == second.stats()["requests"] == 0
    assert _stage(inputs) == "subjects"
    assert [_stage(lines) for _, lines, _ in moved] == ["syllabus", "questions", "answers"]  # the rest went to --base-url
    assert parquet(tmp_path) == online["parquet"]
    assert "Error code: 404" not in capsys.readouterr().err


def test_a_line_a_batch_refused_is_not_batched_again_and_the_reason_is_shown(taxonomy, tmp_path, capsys):
    """`batch_fallback: batch` resends only what resending can fix: a 400 for a line is its failure at once."""
    with start_openai_server(batch_delay_s=0.1, batch_error_rate=0.2, batch_error_status=400) as server:
        code = build(taxonomy, server, tmp_path, "--preset", "smoke-rebatch", "--configs", "syllabi",
                     "--max-failure-rate", "1")
        batches = server_batches(server)
    refused = Counter(line["custom_id"] for _, _, results in batches for line in results
                      if line["response"]["status_code"] == 400)
    submitted = Counter(line["custom_id"] for _, inputs, _ in batches for line in inputs)
    assert code == 0 and refused
    assert all(submitted[key] == 1 for key in refused)  # in one batch only
    err = capsys.readouterr().err
    assert "(unanswered: integer_above_max_value: Invalid 'max_tokens': integer above maximum value.)" in err
    assert f"{sum(refused.values())} failures (stage, item, reason, attempts):" in err
    assert "batch: integer_above_max_value: Invalid 'max_tokens': integer above maximum value. x1" in err


def test_batches_lists_a_batch_created_just_before_a_kill(taxonomy, tmp_path, monkeypatch, capsys):
    update = BatchStore.update

    def killed_before_saving_the_id(self, batch):
        if batch.batch_id:
            raise Killed
        update(self, batch)

    monkeypatch.setattr(BatchStore, "update", killed_before_saving_the_id)
    with start_openai_server(batch_delay_s=60) as server:
        with pytest.raises(Killed):
            build(taxonomy, server, tmp_path, "--batch", "--configs", "subjects")
        monkeypatch.setattr(BatchStore, "update", update)
        capsys.readouterr()
        assert main(["batches", "--work-dir", str(tmp_path / ".glan")]) == 0
        [(batch, _, _)] = server_batches(server)
    header, line = capsys.readouterr().out.splitlines()
    assert line.split()[:4] == [batch.id, "subjects", "validating", "4"]
    assert header.index("stage") == line.index("subjects") > len(batch.id)  # the column fits the id
