"""The judge stage through `glan build --preset judged`, against the test server, whose judge replies are scripted:
each answer the server serves holds a marker, and a judge request whose pair holds that marker gets the verdict
scripted for it (the knob scripted_replies). What the build must keep and drop is computed here from what the
server sent (its log), not from anything glan reports.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest
import yaml

from glan.stages import FEATURES
from tests.helpers import REPO, SMOKE, glan, project, rows
from tests.servers import start_openai_server

SHIPPED_JUDGED = yaml.safe_load((REPO / "taxonomy.yaml").read_text())["presets"]["judged"]
MIN_SCORE = SHIPPED_JUDGED["quality"]["min_score"]
# marker -> (the answer the server serves, the score its judge reply gives)
ANSWERS = {
    "ALPHA": ("ALPHA. The derivative of x squared is two x, by the power rule applied once.", 9),
    "BETA": ("BETA. The derivative of x squared is x, since the exponent simply drops.", 2),
    "GAMMA": ("GAMMA. Apply the power rule: bring the exponent down and reduce it by one.", MIN_SCORE),
    "DELTA": ("DELTA. It is two x; the rule is in every calculus book, look it up there.", MIN_SCORE - 1),
}
VERDICTS = {marker: json.dumps({"score": score, "reason": f"{marker} verdict,\n  in one sentence."})
            for marker, (_, score) in ANSWERS.items()}
DISCIPLINES = "Organic Chemistry,Linear Algebra"


def judged_preset() -> dict:
    """The shipped `judged` preset over smoke, its quality block merged over smoke's (which checks no benchmark)."""
    return {**SHIPPED_JUDGED, "quality": {**SMOKE["quality"], **SHIPPED_JUDGED["quality"]}}


def build(server, tmp, *flags):
    return glan("build", "--taxonomy", tmp / "project" / "taxonomy.yaml", "--disciplines", DISCIPLINES,
                "--model", "test-model", "--base-url", server.base_url, "--out", tmp / "dist",
                "--work-dir", tmp / ".glan", *flags)


def served(log: list[dict], output: str) -> list[dict]:
    return [record for record in log if record["output"] == output and record["status"] == 200]


def pairs_in(out) -> list[dict]:
    """Every pair of the folder's instructions, in each split it has (a split every pair of was dropped has none)."""
    splits = json.loads((out / "glan_manifest.json").read_text())["configs"]["instructions"]["splits"]
    return rows(out, "instructions", tuple(splits))


def marker_of(text: str) -> str:
    return text.split(".")[0]


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("judged")
    project(tmp / "project", judged=judged_preset())
    answers = [answer for answer, _ in ANSWERS.values()]
    with start_openai_server(answer_pool=answers, scripted_replies=VERDICTS) as server:
        code, _, err = build(server, tmp, "--preset", "judged")
        log = server.log()
    return {"code": code, "err": err, "out": tmp / "dist", "log": log, "tmp": tmp}


def test_the_judge_scores_every_pair_and_the_scores_land_in_the_rows(judged):
    assert judged["code"] == 0, judged["err"]
    answered = Counter(marker_of(record["content"]) for record in served(judged["log"], "answer"))
    judge_requests = served(judged["log"], "JudgeScore")
    assert len(judge_requests) == sum(answered.values())  # one verdict per answered pair, no retry
    assert {record["response_format"] for record in judge_requests} == {"json_schema"}
    pairs = pairs_in(judged["out"])
    assert pairs
    for pair in pairs:
        marker = marker_of(pair["messages"][1]["content"])
        assert pair["score"] == ANSWERS[marker][1]
        assert pair["score_reason"] == f"{marker} verdict, in one sentence."  # one line, single spaces
        assert pair["judge_model"] == "test-model"


def test_min_score_drops_exactly_the_pairs_below_it_and_counts_them(judged):
    answered = Counter(marker_of(record["content"]) for record in served(judged["log"], "answer"))
    below = sum(count for marker, count in answered.items() if ANSWERS[marker][1] < MIN_SCORE)
    assert answered["BETA"] and answered["DELTA"] and answered["GAMMA"]  # the pool was served round, so all ran
    pairs = pairs_in(judged["out"])
    kept = Counter(marker_of(pair["messages"][1]["content"]) for pair in pairs)
    assert kept == {marker: count for marker, count in answered.items() if ANSWERS[marker][1] >= MIN_SCORE}
    stats = json.loads((judged["out"] / "stats.json").read_text())
    assert stats["quality"]["dropped"]["low_score"]["total"] == below
    assert stats["quality"]["dropped"]["unscored"]["total"] == 0
    assert sum(stats["quality"]["dropped"]["low_score"]["by_discipline"].values()) == below
    card = (judged["out"] / "README.md").read_text()
    assert f"| low_score | {below} |" in card
    assert "| judge | test-model |" in card  # the judge's model and prompt are in the generation table


def test_the_judge_is_in_the_summary_and_its_requests_in_the_card(judged):
    judge_requests = len(served(judged["log"], "JudgeScore"))
    line = next(line for line in judged["err"].splitlines() if line.startswith("judge "))
    assert line.split()[2] == str(judge_requests)  # stage, rows, requests
    card = (judged["out"] / "README.md").read_text()
    assert f"| {judge_requests} |" in card.split("### Judge")[1].split("###")[0]


def test_the_estimate_counts_the_judge_and_knows_a_judged_build_is_cached(judged, tmp_path):
    judge_requests = len(served(judged["log"], "JudgeScore"))
    tmp = judged["tmp"]
    common = ("--disciplines", DISCIPLINES, "--model", "test-model", "--base-url", "http://127.0.0.1:9/v1")
    code, out, err = glan("estimate", "--taxonomy", tmp / "project" / "taxonomy.yaml", "--preset", "judged",
                          "--work-dir", tmp / ".glan", *common)
    assert code == 0, err
    judge = next(line.split() for line in out.splitlines() if line.startswith("judge "))
    assert judge[1:5] == ["test-model", str(judge_requests), str(judge_requests), "0"]  # requests, cached, to send
    code, out, err = glan("estimate", "--taxonomy", tmp / "project" / "taxonomy.yaml", "--preset", "judged",
                          "--work-dir", tmp_path / ".glan", *common)
    assert code == 0, err
    stages = {line.split()[0]: line.split() for line in out.splitlines()[1:-2]}
    assert stages["judge"][2] == stages["answers"][2]  # nothing cached: a verdict per answer the settings expect


def test_show_sort_score_prints_the_lowest_scored_pairs_first_then_the_highest(judged):
    code, out, err = glan("show", judged["out"], "--sort", "score", "--rows", "2")
    assert code == 0, err
    scores = [int(line.split()[1].split("/")[0]) for line in out.splitlines() if line.startswith("  score ")]
    kept = sorted(pair["score"] for pair in rows(judged["out"], "instructions"))
    assert scores == kept[:2] + kept[::-1][:2]
    lowest, highest = out.split("highest-scored:")
    assert f"  score {MIN_SCORE}/10 (test-model): GAMMA verdict, in one sentence." in lowest
    assert "  score 9/10 (test-model): ALPHA verdict, in one sentence." in highest


def test_a_build_without_the_judge_has_the_same_columns_all_null(tmp_path):
    project(tmp_path / "project")
    with start_openai_server() as server:
        code, _, err = build(server, tmp_path, "--preset", "smoke")
        outputs = {record["output"] for record in server.log()}
    assert code == 0, err
    assert "JudgeScore" not in outputs
    pairs = pairs_in(tmp_path / "dist")
    assert pairs and all(pair["score"] is pair["score_reason"] is pair["judge_model"] is None for pair in pairs)
    shard = next((tmp_path / "dist" / "instructions").glob("train-*.parquet"))
    assert pq.read_schema(shard).names == list(FEATURES["instructions"])
    assert "judge" not in json.loads((tmp_path / "dist" / "glan_manifest.json").read_text())["stages"]
    code, out, err = glan("show", tmp_path / "dist", "--sort", "score")
    assert (code, out) == (2, "")
    assert err == (f"glan: {tmp_path / 'dist'}: the instructions rows have no score (the judge did not run). Build "
                   "with `--preset judged`, or set generation.judge.enabled in taxonomy.yaml.\n")


def test_turning_the_judge_on_pays_only_the_judge_and_judging_again_pays_nothing(tmp_path):
    project(tmp_path / "project", judged=judged_preset(),
            rejudged={**judged_preset(), "quality": {**judged_preset()["quality"], "min_score": 9}})
    with start_openai_server(answer_pool=[answer for answer, _ in ANSWERS.values()],
                             scripted_replies=VERDICTS) as server:
        code, _, err = build(server, tmp_path, "--preset", "smoke")
        assert code == 0, err
        pairs_before = len(served(server.log(), "answer"))
        server.reset()
        code, _, err = build(server, tmp_path, "--preset", "judged")
        assert code == 0, err
        turned_on = server.log()
        server.reset()
        code, _, err = build(server, tmp_path, "--preset", "rejudged")  # another min_score: the units run again
        assert code == 0, err
        rejudged = server.log()
    assert {record["output"] for record in turned_on} == {"JudgeScore"}
    assert len(served(turned_on, "JudgeScore")) == len(turned_on) == pairs_before
    assert rejudged == []  # every verdict came from the cache
    kept = pairs_in(tmp_path / "dist")
    assert {pair["score"] for pair in kept} == {9}


# A judge reply is untrusted (docs/security.md): each of these fails its attempt, never the run or the cache.
HOSTILE_VERDICTS = {
    "HOSTILE0": json.dumps({"score": 11, "reason": "Out of range."}),
    "HOSTILE1": json.dumps({"score": "7", "reason": "A number as text."}),
    "HOSTILE2": json.dumps({"score": 7.5, "reason": "Not a whole number."}),
    "HOSTILE3": '{"score": 1' + "0" * 400 + ', "reason": "A huge number."}',
    "HOSTILE4": '{"score": NaN, "reason": "Not a number."}',
    "HOSTILE5": json.dumps({"score": 8, "reason": "Long. " * 20_000}),
    "HOSTILE6": "I would rate this answer 8/10.",
    "HOSTILE7": "[" * 10_000 + "]" * 10_000,
    "HOSTILE8": json.dumps({"score": True, "reason": "A boolean."}),
}


def test_hostile_verdicts_fail_their_pair_and_never_the_run_or_the_cache(tmp_path):
    project(tmp_path / "project", judged=judged_preset())
    pool = [f"{marker}. An answer the judge replies to with something hostile." for marker in HOSTILE_VERDICTS]
    pool.append(ANSWERS["ALPHA"][0])
    with start_openai_server(answer_pool=pool) as server:
        server.configure(scripted_replies={**HOSTILE_VERDICTS, "ALPHA": VERDICTS["ALPHA"]})  # too long for argv
        code, _, err = build(server, tmp_path, "--preset", "judged", "--max-failure-rate", "1")
        log = server.log()
        server.reset()
        again, _, err_again = build(server, tmp_path, "--preset", "judged", "--max-failure-rate", "1")
        log_again = server.log()
    assert (code, again) == (0, 0), err + err_again
    assert "Traceback" not in err + err_again and "bug in glan" not in err + err_again
    answered = Counter(marker_of(record["content"]) for record in served(log, "answer"))
    hostile = sum(count for marker, count in answered.items() if marker in HOSTILE_VERDICTS)
    assert set(answered) == {*HOSTILE_VERDICTS, "ALPHA"}
    # Three attempts per hostile pair (each gets the same reply), one per good one.
    assert len(served(log, "JudgeScore")) == 3 * hostile + answered["ALPHA"]
    failed = [json.loads(line) for path in (tmp_path / ".glan" / "units").glob("*/*/failures.jsonl")
              for line in path.read_text().splitlines()]
    assert Counter(failure["stage"] for failure in failed) == {"judge": hostile}
    kept = pairs_in(tmp_path / "dist")
    assert {marker_of(pair["messages"][1]["content"]) for pair in kept} == {"ALPHA"}
    assert {pair["score"] for pair in kept} == {9}
    stats = json.loads((tmp_path / "dist" / "stats.json").read_text())
    assert stats["quality"]["dropped"]["unscored"]["total"] == hostile
    assert log_again == []  # the failed verdicts are final: the rerun replays nothing and sends nothing


def test_the_manifest_prices_the_judge_from_the_tokens_its_units_recorded_batch_api_too(tmp_path):
    """Through the Batch API the judge's answers land in the shared cache, not the units' own: the judge's tokens
    and cost are what the units recorded, as for every stage (stages.judge.tokens)."""
    project(tmp_path / "project", judged=judged_preset())
    answers = [answer for answer, _ in ANSWERS.values()]
    with start_openai_server(answer_pool=answers, scripted_replies=VERDICTS) as server:
        code, _, err = build(server, tmp_path, "--preset", "judged", "--batch", "--price", "test-model=1000,2000", "--yes")
    assert code == 0, err
    manifest = json.loads((tmp_path / "dist" / "glan_manifest.json").read_text())
    judge, tokens = manifest["judge"], manifest["stages"]["judge"]["tokens"]
    assert judge["prompt_tokens"] == tokens["prompt"] > 0 and judge["completion_tokens"] == tokens["completion"] > 0
    batch_price = (1000 * (tokens["prompt"] - tokens["cached"]) + 1000 * tokens["cached"]
                   + 2000 * tokens["completion"]) / 1e6 / 2
    assert judge["cost"] == round(batch_price, 6)


def test_show_sort_score_prints_what_another_program_wrote_harmlessly(judged, tmp_path):
    """A folder is whatever wrote it: a null reason, a null question id, escape sequences and bidi overrides in the
    text are shown as code points, never a traceback nor a sequence that drives the terminal; shards whose columns
    do not match the card's features are one line."""
    import shutil

    import pyarrow as pa

    folder = tmp_path / "folder"
    shutil.copytree(judged["out"], folder)
    shard = next((folder / "instructions").glob("train-*.parquet"))
    table = pq.read_table(shard)
    hostile = {
        "score_reason": [None] + ["\x1b]0;owned\x07\x1b[2J\u202eevil"] * (table.num_rows - 1),
        "discipline": ["\x1b]8;;http://x\x07link\x1b]8;;\x07"] * table.num_rows,
        "question_id": [None] + table.column("question_id").to_pylist()[1:],
    }
    for name, values in hostile.items():
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), pa.array(values))
    pq.write_table(table, shard)
    code, out, err = glan("show", folder, "--sort", "score")
    assert code == 0, err
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "<U+001B>]0;owned<U+0007><U+001B>[2J<U+202E>evil" in out and "[<U+001B>]8;;http://x<U+0007>link" in out

    other = tmp_path / "other"
    shutil.copytree(judged["out"], other)
    shard = next((other / "instructions").glob("train-*.parquet"))
    scores = pa.array([f"score {value}" for value in table.column("score").to_pylist()])
    pq.write_table(table.set_column(table.schema.get_field_index("score"), "score", scores), shard)
    code, out, err = glan("show", other, "--sort", "score")
    assert (code, out) == (2, "") and err.startswith(f"glan: {other}: cannot read instructions (")
