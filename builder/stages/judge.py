"""The judge (optional, after the answers; `generation.judge.enabled`): an LLM rates each question-answer pair
against a rubric (correct, complete, clear, answers what was asked) and replies with a 1-10 score and a
one-sentence reason, as structured output. It fills no config of its own: it gives the instructions their `score`,
`score_reason` and `judge_model` columns, which are null when it does not run (the columns are always there, so the
features never change shape), and `quality.min_score` drops the pairs below it.

A reply is untrusted: a score that is not a JSON integer from 1 to 10, or a reason over its bound, fails its
attempt like any invalid output (builder/llm/attempts.py), and a pair without a valid verdict after every attempt
keeps null scores (and is dropped as "unscored" when min_score is set).
"""

import re

from ..quality import MinScore, filter_steps
from ..schemas import judge_model
from .answers import Answers
from .base import Output, Stage

_SPACES = re.compile(r"\s+")


class Judge(Stage):
    name, config = "judge", Answers.config
    features = Answers.features
    output = Output("JudgeScore", lambda settings: judge_model(settings.judge.max_reason_chars))
    example = {"score": 7, "reason": "Correct and complete, but the last step is not explained."}
    texts = staticmethod(Answers.texts)

    @staticmethod
    def runs(settings):
        return settings.judge.enabled

    def item_id(self, pair):
        return pair["question_id"]

    def context(self, pair):
        return {
            **{key: pair[key] for key in ("field", "subfield", "discipline", "subject", "level")},
            "question": pair["messages"][0]["content"],
            "answer": pair["messages"][1]["content"],
        }

    def parse(self, pair, values):
        verdict = values[0]
        return [
            {
                **pair,
                "score": verdict.score,
                "score_reason": _SPACES.sub(" ", verdict.reason).strip(),
                "judge_model": self.ctx.model,
            }
        ]

    def unanswered(self, pair):
        """A pair the judge gave no valid verdict stays, unscored."""
        return [{**pair, "score": None, "score_reason": None, "judge_model": None}]

    async def finish(self, rows, failed, benchmarks, report, new_rows):
        """Every pair, scored or not; then the pairs min_score drops."""
        return {"train": await filter_steps([MinScore(self.ctx.settings.quality.min_score)], rows, report, new_rows)}
