import asyncio

from datasets import Features, List, Value

from ..quality import AnswerFilter, Decontaminate, filter_steps, held_out_ids
from ..schemas import JUDGED, PROVENANCE, SAMPLED, SUBJECT, answer_model
from .base import Output, Stage, subject_lineage


class Answers(Stage):
    """The answer to each question, as a chat pair: the `messages` column trainers load, in a train split and the
    held-out test split."""

    name, config = "answers", "instructions"
    features = Features(
        {
            "messages": List({"role": Value("string"), "content": Value("string")}),
            "question_id": Value("string"),
            **SUBJECT,
            **SAMPLED,
            "question_model": Value("string"),
            **PROVENANCE,
            **JUDGED,
        }
    )
    output = Output(
        "AnswerText", lambda settings: answer_model(settings.answers.max_chars), free_text=True, json_form="Answer"
    )
    example = {"answer": "An example answer."}

    def item_id(self, question):
        return question["question_id"]

    def context(self, question):
        return question

    def parse(self, question, values):
        return [
            {
                "messages": [
                    {"role": "user", "content": question["question"]},
                    {"role": "assistant", "content": values[0].answer.strip()},
                ],
                "question_id": question["question_id"],
                **subject_lineage(question),
                **{key: question[key] for key in ("strategy", "session_indices", "sessions", "key_concepts")},
                "question_model": question["model"],
                **self.ctx.provenance(),
            }
        ]

    async def finish(self, rows, failed, benchmarks, report, new_rows):
        """The answered questions that pass the answer filters and whose answer shares no words with a benchmark
        (the whole pair is then checked: its question was before answering), split into train and the held-out
        test split."""
        quality = self.ctx.settings.quality
        for reason in ("truncated", "empty"):  # answers the engine gave up on
            report.record(reason, [item for item, failure in failed if failure == reason])
        steps: list = [AnswerFilter(quality.answer_filters, answer_of=_answer)]
        if benchmarks:
            steps.append(Decontaminate(benchmarks, texts_of=lambda row: {"answer": _answer(row)}))
        rows = await filter_steps(steps, rows, report, new_rows)
        return await asyncio.to_thread(_splits, rows, quality.test_split.per_discipline, new_rows)

    @staticmethod
    def texts(row):
        """An instruction keeps its question and answer in `messages`."""
        return {"question": row["messages"][0]["content"], "answer": row["messages"][1]["content"]}


def _answer(row: dict) -> str:
    return row["messages"][1]["content"]


def _splits(rows, per_discipline: int, new_rows) -> dict:
    """`rows` in train and the held-out test split, chosen from their ids alone (held_out_ids)."""
    test_ids = held_out_ids(rows, per_discipline=per_discipline)
    splits = {"train": new_rows(), "test": new_rows()}
    for chunk in rows.chunks():
        splits["train"].add(row for row in chunk if row["question_id"] not in test_ids)
        splits["test"].add(row for row in chunk if row["question_id"] in test_ids)
    rows.remove()
    return {split: kept.close() for split, kept in splits.items()}
