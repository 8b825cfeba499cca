"""Decontamination and the held-out split as part of `glan build`, against the test servers.

The Hub test server holds small copies of two shipped benchmarks under their real ids and pinned revisions (gsm8k,
mmlu), and a local .jsonl.gz file is a third benchmark. The OpenAI test server serves questions and answers from
pools with planted texts: a question holding a 13-word run of a gsm8k question, a question holding a whole 10-word
mmlu item (a short item), an answer holding a 13-word run of a gsm8k answer, an answer holding the short mmlu item;
and two that must pass: a question holding 12 words of a gsm8k run (one short of the n-gram), and one holding a
6-word mmlu item (under min_words, not matched). Every other text is words no other text shares. What the build must
drop is known from the pools and from the server's log (which question each answer went to), not from glan.

The held-out split: two disciplines built one after the other from the same pool of near-twin families, so each
discipline's test question has its family in the other discipline; which test question has a twin in the other's
train split is computed here from the rows, by exact Jaccard over the questions' word sets.
"""

from __future__ import annotations

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import SMOKE, build_args, glan, project, words
from tests.helpers import rows as read_rows  # a test here names its own `rows`
from tests.servers import start_openai_server
from tests.test_benchmarks_hub import DEFAULTS, child

SHIPPED = {entry["name"]: entry for entry in DEFAULTS}
GSM8K, MMLU = SHIPPED["gsm8k"], SHIPPED["mmlu"]
UNCHECKED = ["math", "humaneval", "mbpp", "bbh", "arc"]

GSM8K_QUESTION = ("Natalia sold clips to forty eight of her friends in April and then she sold half as many clips "
                  "in May")
GSM8K_ANSWER = ("Janet sells sixteen minus three minus four equals nine duck eggs a day so she makes nine times two "
                "equals eighteen dollars every day at the market")
MMLU_SHORT = "Which planet in our solar system has the most moons?"  # 10 words: matched whole
MMLU_TOO_SHORT = "What is the capital of France?"  # 6 words, under min_words 8: not matched

Q_GSM8K = f"Homework: {GSM8K_QUESTION}. How many clips did Natalia sell altogether in April and May?"
Q_SHORT = f"In astronomy class today: {MMLU_SHORT} Explain it using the latest observations of the outer planets."
Q_NEAR_MISS = ("Natalia sold clips to forty eight of her friends in April and later asked a chemistry question "
               "about esters and their smell")  # 12 words of the gsm8k run, then others
Q_TOO_SHORT = (f"Explain why '{MMLU_TOO_SHORT}' makes a poor exam question for a course on organic reaction "
               "mechanisms and synthesis")
A_GSM8K = f"Let us work it out step by step. {GSM8K_ANSWER}. So the answer is eighteen."
A_SHORT = f"A good review question is this one: {MMLU_SHORT} It checks that you read the chapter on Saturn."


def filler(kind: str, n: int) -> str:
    return f"Filler {kind} {n}: {words(kind, n)}."


def table(column_texts: dict[str, list[str]]) -> pa.Table:
    rows = len(next(iter(column_texts.values())))
    return pa.table({"id": list(range(rows)), **column_texts})


def gsm8k_copy() -> dict[str, dict[str, pa.Table]]:
    return {"main": {
        "train": table({"question": [GSM8K_QUESTION, words("gsm8k", "train", "q")],
                        "answer": [words("gsm8k", "train", "a0"), words("gsm8k", "train", "a1")]}),
        "test": table({"question": [words("gsm8k", "test", "q0"), words("gsm8k", "test", "q1")],
                       "answer": [GSM8K_ANSWER, words("gsm8k", "test", "a")]}),
    }}  # fmt: skip


def mmlu_copy() -> dict[str, dict[str, pa.Table]]:
    return {"all": {
        "dev": table({"question": [words("mmlu", "dev")]}),
        "validation": table({"question": [words("mmlu", "validation")]}),
        "test": table({"question": [MMLU_SHORT, MMLU_TOO_SHORT, words("mmlu", "test")]}),
    }}  # fmt: skip


@pytest.fixture(scope="module")
def hub():
    from tests.servers.hub_datasets import parquet_repo, publish
    from tests.servers.hub_server import start_hub_server

    handle = start_hub_server()
    publish(handle, GSM8K["dataset"], GSM8K["revision"], parquet_repo(gsm8k_copy()))
    publish(handle, MMLU["dataset"], MMLU["revision"], parquet_repo(mmlu_copy()))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def built(hub, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("decontam")
    local = tmp / "local.jsonl.gz"
    with gzip.open(local, "wt") as out:
        out.writelines(json.dumps({"text": words("local", n)}) + "\n" for n in range(2))
    benchmarks = [GSM8K, MMLU, {"name": "local", "path": str(local), "text_columns": ["text"]}]
    taxonomy = project(tmp / "project", decon={
        "quality": {**SMOKE["quality"], "decontamination": {"ngram": 13, "min_words": 8, "benchmarks": benchmarks}}})
    questions = [Q_GSM8K, Q_SHORT, Q_NEAR_MISS, Q_TOO_SHORT] + [filler("question", n) for n in range(40)]
    answers = [A_GSM8K, A_SHORT] + [filler("answer", n) for n in range(40)]
    with start_openai_server(question_pool=questions, answer_pool=answers, log_bodies=True) as server:
        [result] = child(hub, tmp / "hf-home", {"op": "glan", "argv": build_args(
            server, tmp / "dist", tmp / ".glan", disciplines="Organic Chemistry", preset="decon", taxonomy=taxonomy)})
        log = server.log()
    return {**result, "out": tmp / "dist", "work": tmp / ".glan", "log": log, "local": str(local)}


def answered(log: list[dict], answer: str) -> list[str]:
    """The questions (of the pool) whose answer request got `answer`."""
    asked = []
    for record in log:
        if record["output"] == "answer" and record["status"] == 200 and record["content"] == answer:
            prompt = json.dumps(json.loads(record["body"])["messages"])
            asked += [question for question in (Q_NEAR_MISS, Q_TOO_SHORT) if json.dumps(question)[1:-1] in prompt]
            asked += [text for n in range(40) if json.dumps(text := filler("question", n))[1:-1] in prompt]
    return asked


def test_the_planted_pairs_are_dropped_per_side_and_nothing_else(built):
    assert built["exit"] == 0, built["err"]
    questions = read_rows(built["out"], "questions")
    texts = [row["question"] for row in questions]
    # The question side, before answering: the gsm8k run and the whole short item; not 12 words of a run, nor an
    # item under min_words.
    assert Q_GSM8K not in texts and Q_SHORT not in texts
    assert texts.count(Q_NEAR_MISS) == 1 and texts.count(Q_TOO_SHORT) == 1
    sent = [record["content"] for record in built["log"] if record["output"] == "question"]
    assert {Q_GSM8K, Q_SHORT} <= set(sent) and len(set(sent)) == len(sent)  # each served once: no dedup at work
    assert len(texts) == len(sent) - 2
    answers_asked = [record for record in built["log"] if record["output"] == "answer"]
    assert len(answers_asked) == len(questions)  # a question dropped before answering cost no answer
    # The answer side, after answering: exactly the two pairs whose answer was planted, by question_id.
    dropped_questions = answered(built["log"], A_GSM8K) + answered(built["log"], A_SHORT)
    assert len(dropped_questions) == 2
    dropped_ids = sorted(row["question_id"] for row in questions if row["question"] in dropped_questions)
    instructions = read_rows(built["out"], "instructions", ("train", "test"))
    kept_ids = sorted(row["question_id"] for row in instructions)
    assert sorted(set(row["question_id"] for row in questions) - set(kept_ids)) == dropped_ids
    assert len(kept_ids) == len(questions) - 2
    assert not {A_GSM8K, A_SHORT} & {row["messages"][1]["content"] for row in instructions}


def test_stats_count_hits_per_benchmark_and_side_and_say_what_was_checked(built):
    stats = json.loads((built["out"] / "stats.json").read_text())
    hits = {"gsm8k": {"question": 1, "answer": 1}, "mmlu": {"question": 1, "answer": 1},
            "local": {"question": 0, "answer": 0}}
    assert stats["quality"]["dropped"]["contaminated"] == {"total": 4, "by_discipline": {"organic-chemistry": 4}}
    assert {reason: stats["quality"]["dropped"][reason]["total"] for reason in ("exact", "near", "refusal")} == {
        "exact": 0, "near": 0, "refusal": 0}
    assert stats["quality"]["benchmark_hits"] == hits
    assert stats["decontamination"] == {
        "ngram": 13, "min_words": 8,
        "benchmarks": [
            {"name": "gsm8k", "source": f"openai/gsm8k@{GSM8K['revision']}", "configs": ["main"],
             "splits": ["train", "test"], "text_columns": ["question", "answer"], "items": 8, "too_short": 0,
             "hits": hits["gsm8k"]},
            {"name": "mmlu", "source": f"cais/mmlu@{MMLU['revision']}", "configs": ["all"],
             "splits": ["dev", "validation", "test"], "text_columns": ["question"], "items": 5, "too_short": 1,
             "hits": hits["mmlu"]},
            {"name": "local", "source": built["local"], "configs": [], "splits": [], "text_columns": ["text"],
             "items": 2, "too_short": 0, "hits": hits["local"]},
        ],
        "unchecked": UNCHECKED,
    }
    [unit] = (built["work"] / "units" / "organic-chemistry").iterdir()
    assert json.loads((unit / "unit.json").read_text())["quality"]["benchmark_hits"] == hits


def test_the_card_and_the_summary_say_what_was_checked_and_hit(built):
    card = (built["out"] / "README.md").read_text()
    assert (
        "| benchmark | source | configs | splits | columns | items | too short | question hits | answer hits |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        f"| gsm8k | `openai/gsm8k@{GSM8K['revision']}` | main | train, test | question, answer | 8 | 0 | 1 | 1 |\n"
        f"| mmlu | `cais/mmlu@{MMLU['revision']}` | all | dev, validation, test | question | 5 | 1 | 1 | 1 |\n"
        f"| local | `{built['local']}` |  |  | text | 2 | 0 | 0 | 0 |\n\n"
        "Unchecked: glan's default list names `math`, `humaneval`, `mbpp`, `bbh`, `arc`, which this build did not "
        "check."
    ) in card
    assert "| contaminated | 4 |" in card
    assert "benchmark hits (question/answer): gsm8k 1/1, mmlu 1/1, local 0/0" in built["err"].splitlines()


# -- the held-out split across disciplines ------------------------------------------------------------------------

FAMILIES = [words("family", n, count=20) for n in range(4)]
# Each family twice: as written, and with its last word changed (Jaccard 19/21 with it, a near repeat).
TWIN_POOL = [text for family in FAMILIES for text in (family, family.rsplit(" ", 1)[0] + " changed")]


def word_set(text: str) -> set[str]:
    from glan.quality.text import normalized_words

    return set(normalized_words(text))


def expected_twins(rows_by_discipline: dict[str, dict[str, list[dict]]]) -> dict:
    """discipline -> test question_id -> per other discipline, its train question of lowest id within Jaccard 0.8."""
    found = {}
    for discipline, splits in sorted(rows_by_discipline.items()):
        for test in sorted(splits["test"], key=lambda row: row["question_id"]):
            mine = word_set(test["messages"][0]["content"])
            twins = []
            for other, other_splits in sorted(rows_by_discipline.items()):
                similar = sorted(
                    row["question_id"] for row in other_splits["train"]
                    if other != discipline and len(mine & (theirs := word_set(row["messages"][0]["content"])))
                    / len(mine | theirs) >= 0.8)
                if similar:
                    twins.append({"discipline_id": other, "question_id": similar[0]})
            if twins:
                found.setdefault(discipline, {})[test["question_id"]] = twins
    return found


# Each discipline holds out one of the FAMILIES, chosen by a hash of its question ids: with three disciplines, some
# discipline's test question has its family in another's train split unless all three hold out the same family.
BESIDE = "Organic Chemistry,Linear Algebra,Calculus"


def test_a_test_question_with_a_near_twin_in_another_disciplines_train_split_is_reported(tmp_path):
    taxonomy = project(tmp_path / "project", twins={"questions": {**SMOKE["questions"], "per_subject": 3}})

    def build(disciplines: str, out: str):
        code, _, err = glan(*build_args(server, tmp_path / out, tmp_path / ".glan", disciplines=disciplines,
                                        preset="twins", taxonomy=taxonomy))
        assert code == 0, err

    with start_openai_server(question_pool=TWIN_POOL) as server:
        build("Organic Chemistry", "alone")
        build(BESIDE, "both")
    ids = ("organic-chemistry", "linear-algebra", "calculus")
    rows = {discipline: {split: [row for row in read_rows(tmp_path / "both", "instructions", (split,))
                                 if row["discipline_id"] == discipline] for split in ("train", "test")}
            for discipline in ids}
    # Each discipline kept one question per family (the near repeats went in its own dedup), and holds one out.
    for discipline in ids:
        assert len(rows[discipline]["test"]) == 1
        assert len(rows[discipline]["train"]) + 1 == len(FAMILIES)
    twins = expected_twins(rows)
    assert twins  # the test has something to find
    held_out = json.loads((tmp_path / "both" / "stats.json").read_text())["held_out"]
    assert held_out["near_twins"] == twins
    assert held_out["test_questions"] == {"calculus": 1, "linear-algebra": 1, "organic-chemistry": 1}
    assert held_out["with_near_twin_elsewhere"] == {discipline: len(twins.get(discipline, {}))
                                                   for discipline in sorted(ids)}
    assert held_out["total_with_near_twin_elsewhere"] == sum(map(len, twins.values()))
    card = (tmp_path / "both" / "README.md").read_text()
    for discipline in sorted(ids):
        listed = ", ".join(f"`{question_id}` ({', '.join(twin['discipline_id'] for twin in found)})"
                           for question_id, found in twins.get(discipline, {}).items())
        assert f"| {discipline} | 1 | {len(twins.get(discipline, {}))} | {listed} |" in card
    # No row moves for it: the discipline built alone has the same files as when built beside the other.
    for split in ("train", "test"):
        assert (tmp_path / "alone" / "instructions" / f"{split}-organic-chemistry.parquet").read_bytes() == (
            tmp_path / "both" / "instructions" / f"{split}-organic-chemistry.parquet").read_bytes()
    alone = json.loads((tmp_path / "alone" / "stats.json").read_text())["held_out"]
    assert alone["near_twins"] == {} and alone["total_with_near_twin_elsewhere"] == 0
    # Each unit's figures: a row group per split, so that the check's read of one split skips the other's.
    for discipline in ids:
        [figures] = (tmp_path / ".glan" / "units" / discipline).glob("*/near_twins.parquet")
        file = pq.ParquetFile(figures)
        assert [set(file.read_row_group(group).column("split").to_pylist())
                for group in range(file.num_row_groups)] == [{"train"}, {"test"}]


def test_a_rebuild_that_changes_no_unit_reads_the_held_out_check_it_remembered(tmp_path, monkeypatch):
    import glan.quality.held_out as held_out

    checks = []
    check = held_out.cross_discipline_twins
    monkeypatch.setattr(held_out, "cross_discipline_twins", lambda *args: checks.append(args) or check(*args))
    taxonomy = project(tmp_path / "project", twins={"questions": {**SMOKE["questions"], "per_subject": 3}})

    def build(out: str) -> dict:
        code, _, err = glan(*build_args(server, tmp_path / out, tmp_path / ".glan", disciplines=BESIDE,
                                        preset="twins", taxonomy=taxonomy))
        assert code == 0, err
        return json.loads((tmp_path / out / "stats.json").read_text())["held_out"]

    with start_openai_server(question_pool=TWIN_POOL) as server:
        first = build("first")
        assert first["total_with_near_twin_elsewhere"] > 0 and len(checks) == 1
        assert build("again") == first and len(checks) == 1  # nothing changed: remembered
        (tmp_path / ".glan" / "held_out.json").write_text('{"key": "')  # a memo that cannot be read
        assert build("checked") == first and len(checks) == 2  # computed again
        assert build("remembered") == first and len(checks) == 2


def test_a_held_out_memo_of_the_wrong_shape_is_checked_again_and_one_that_cannot_be_written_fails_no_build(
        tmp_path, monkeypatch):
    import glan.quality.held_out as held_out

    checks = []
    check = held_out.cross_discipline_twins
    monkeypatch.setattr(held_out, "cross_discipline_twins", lambda *args: checks.append(args) or check(*args))
    taxonomy = project(tmp_path / "project", twins={"questions": {**SMOKE["questions"], "per_subject": 3}})
    memo = tmp_path / ".glan" / "held_out.json"

    def build(out: str) -> dict:
        code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "twins", "--disciplines",
                            BESIDE, "--model", "test-model", "--base-url", server.base_url,
                            "--out", tmp_path / out, "--work-dir", tmp_path / ".glan")
        assert code == 0, err
        return json.loads((tmp_path / out / "stats.json").read_text())["held_out"]

    with start_openai_server(question_pool=TWIN_POOL) as server:
        first = build("first")
        assert first["total_with_near_twin_elsewhere"] > 0 and len(checks) == 1
        key = json.loads(memo.read_text())["key"]
        [(discipline, tests)] = list(first["near_twins"].items())[:1]
        question_id = next(iter(tests))
        # The right key, and twins that are not discipline -> question_id -> [{discipline_id, question_id}]: checked
        # again, the stats those of a fresh check.
        wrong = [[], {discipline: []}, {discipline: {question_id: "x"}}, {discipline: {question_id: [["a", "b"]]}},
                 {discipline: {question_id: [{"discipline_id": 1, "question_id": "q"}]}},
                 {discipline: {question_id: [{"discipline_id": "a"}]}}]
        for count, twins in enumerate(wrong, start=2):
            memo.write_text(json.dumps({"key": key, "twins": twins}))
            assert build(f"wrong-{count}") == first and len(checks) == count, twins
        assert build("remembered") == first and len(checks) == len(wrong) + 1
        monkeypatch.setattr(held_out, "MEMO_FORMAT", held_out.MEMO_FORMAT + 1)  # twins found another way
        assert build("another-format") == first and len(checks) == len(wrong) + 2
        # The memo is a cache: a path that cannot be written (a folder at it) fails no build.
        memo.unlink()
        memo.mkdir()
        assert build("unwritable") == first and len(checks) == len(wrong) + 3
        assert build("unwritable-again") == first and len(checks) == len(wrong) + 4
        assert memo.is_dir() and not memo.with_name("held_out.json.partial").exists()


def test_a_damaged_near_twin_figures_file_stops_the_build_with_one_line_and_its_advice_mends_it(tmp_path):
    taxonomy = project(tmp_path / "project", twins={"questions": {**SMOKE["questions"], "per_subject": 3}})

    def build(out: str) -> tuple[int, str]:
        code, _, err = glan(*build_args(server, tmp_path / out, tmp_path / ".glan", disciplines=BESIDE,
                                        preset="twins", taxonomy=taxonomy))
        return code, err

    with start_openai_server(question_pool=TWIN_POOL) as server:
        assert build("first")[0] == 0
        first = json.loads((tmp_path / "first" / "stats.json").read_text())["held_out"]
        [figures] = (tmp_path / ".glan" / "units" / "calculus").glob("*/near_twins.parquet")
        figures.write_bytes(b"PAR1 not a parquet file")  # another size and time: the memo does not match
        code, err = build("damaged")
        assert code == 2
        assert err.splitlines() == [
            "glan: nothing to request: all 3 disciplines are built already with these settings.",
            f"glan: {figures}: not the near-duplicate figures glan writes (Parquet magic bytes not found in footer. "
            f"Either the file is corrupted or this is not a parquet file.). Delete its unit folder {figures.parent} "
            "and build again: the unit is made again from the cache."]
        served = len(server.log())
        shutil.rmtree(figures.parent)
        assert build("mended")[0] == 0
        assert len(server.log()) == served  # made again from the cache
    assert json.loads((tmp_path / "mended" / "stats.json").read_text())["held_out"] == first


# -- preflight ------------------------------------------------------------------------------------------------


def test_a_benchmark_that_cannot_be_read_stops_build_and_estimate_before_the_lock_and_any_request(tmp_path):
    missing = tmp_path / "gone.jsonl"
    taxonomy = project(tmp_path / "project", gone={"quality": {**SMOKE["quality"], "decontamination": {
        "benchmarks": [{"name": "gone", "path": str(missing), "text_columns": ["text"]}]}}})
    line = (f"glan: {missing}: cannot read benchmark file ([Errno 2] No such file or directory: '{missing}'). Check "
            "the path in generation.quality.decontamination.benchmarks.\n")
    with start_openai_server() as server:
        flags = ["--taxonomy", taxonomy, "--preset", "gone", "--disciplines", "Organic Chemistry", "--model",
                 "test-model", "--base-url", server.base_url, "--work-dir", tmp_path / ".glan"]
        build = glan("build", *flags, "--out", tmp_path / "dist")
        estimate = glan("estimate", *flags)
        sent = server.stats()["requests"]
    assert build == (2, "", line)
    assert estimate == (2, "", line)
    assert sent == 0
    assert not (tmp_path / ".glan" / "lock").exists() and not (tmp_path / ".glan" / "units").exists()
    assert not (tmp_path / "dist").exists()
