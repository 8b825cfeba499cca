from datasets import Features, List, Value

from ..schemas import PROVENANCE, SAMPLED, SUBJECT
from .base import Stage, subject_lineage


class Answers(Stage):
    """The answer to each question, as a chat pair: the `messages` column trainers load."""

    name, config, output_model = "answers", "instructions", "AnswerText"
    features = Features({
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "question_id": Value("string"), **SUBJECT, **SAMPLED, "question_model": Value("string"), **PROVENANCE,
    })
    example = {"answer": "An example answer."}

    def item_id(self, question):
        return question["question_id"]

    def context(self, question):
        return question

    def parse(self, question, values):
        return [{
            "messages": [{"role": "user", "content": question["question"]},
                         {"role": "assistant", "content": values[0].answer.strip()}],
            "question_id": question["question_id"], **subject_lineage(question),
            **{key: question[key] for key in ("strategy", "session_indices", "sessions", "key_concepts")},
            "question_model": question["model"], **self.ctx.provenance(),
        }]
