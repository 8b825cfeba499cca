"""Homework questions sampled from a syllabus, as the paper does (GLAN §2.4):

- single session: 1-5 key concepts of one session (basic questions);
- two sessions: 2-5 concepts from the union of two sessions, at least one from each (harder ones);
the prompt carries the whole syllabus and says the student has learned up to the later session.
"""

import random

from datasets import Features, Value

from ..ids import content_id
from ..quality import filter_steps, question_steps
from ..schemas import PROVENANCE, SAMPLED, SUBJECT, question_model
from .base import Output, Stage, subject_lineage

SINGLE, TWO = "single_session", "two_sessions"


class Questions(Stage):
    name, config = "questions", "questions"
    features = Features(
        {
            "question_id": Value("string"),
            **SUBJECT,
            **SAMPLED,
            "sample_index": Value("int32"),
            "question": Value("string"),
            **PROVENANCE,
        }
    )
    output = Output(
        "QuestionText",
        lambda settings: question_model(settings.questions.max_chars),
        free_text=True,
        label="Question",
        json_form="HomeworkQuestion",
    )
    holds_the_unit = True
    example = {"question": "An example homework question on the chosen key concepts?"}

    def inputs(self, syllabi):
        return (plan for syllabus in syllabi for plan in self.plan(syllabus))  # made as they are asked for

    def plan(self, syllabus):
        """The subject's question specs; its own rng, so other subjects never move its samples."""
        settings = self.ctx.settings.questions
        rng = random.Random(f"{self.ctx.settings.seed}:{syllabus['subject_id']}")
        sessions = [session for session in syllabus["sessions"] if session["key_concepts"]]
        # The prompt shows sessions numbered from 1; built once per subject, shared by its questions.
        numbered = [{**session, "number": session["index"] + 1} for session in syllabus["sessions"]]
        plans = []
        for sample_index in range(settings.per_subject):
            two = len(sessions) >= 2 and rng.random() >= settings.single_session_share
            chosen, concepts = (
                _two_sessions(rng, sessions, settings.two_concepts)
                if two
                else _single_session(rng, sessions, settings.single_concepts)
            )
            strategy = TWO if two else SINGLE
            indices = [session["index"] for session in chosen]
            plans.append(
                {
                    "question_id": content_id(syllabus["subject_id"], strategy, indices, concepts, sample_index),
                    "syllabus": syllabus,
                    "numbered": numbered,
                    "strategy": strategy,
                    "session_indices": indices,
                    "sessions": [session["title"] for session in chosen],
                    "key_concepts": concepts,
                    "sample_index": sample_index,
                }
            )
        return plans

    @staticmethod
    def requests_per_input(settings):
        return settings.questions.per_subject

    def item_id(self, plan):
        return plan["question_id"]

    def samples(self, plan):
        return [plan["sample_index"]]

    def context(self, plan):
        numbered = plan["numbered"]
        chosen = [numbered[index] for index in plan["session_indices"]]
        return {
            **plan["syllabus"],
            "syllabus": numbered,
            "chosen_sessions": chosen,
            "key_concepts": plan["key_concepts"],
            "learned_up_to": max(session["number"] for session in chosen),
            "strategy": plan["strategy"],
        }

    def prompt_cache_key(self, plan):
        return plan["syllabus"]["subject_id"]  # the subject's system message and syllabus start its 300 prompts

    def parse(self, plan, values):
        return [
            {
                "question_id": plan["question_id"],
                **subject_lineage(plan["syllabus"]),
                **{
                    key: plan[key]
                    for key in ("strategy", "session_indices", "sessions", "key_concepts", "sample_index")
                },
                "question": values[0].question.strip(),
                **self.ctx.provenance(),
            }
        ]

    async def finish(self, rows, failed, benchmarks, report, new_rows):
        """Deduplicated and decontaminated before any answer is paid for: a dropped question costs no answer. The
        steps take tens of milliseconds of CPU or more: never in one piece on the event loop, where they would hold
        up every other unit's requests meanwhile (each step says how it runs)."""
        return {
            "train": await filter_steps(question_steps(self.ctx.settings.quality, benchmarks), rows, report, new_rows)
        }


def _single_session(rng, sessions, bounds):
    session = rng.choice(sessions)
    concepts = session["key_concepts"]
    count = rng.randint(min(bounds.min, len(concepts)), min(bounds.max, len(concepts)))
    chosen = set(rng.sample(concepts, count))
    return [session], [concept for concept in concepts if concept in chosen]


def _two_sessions(rng, sessions, bounds):
    first, second = sorted(rng.sample(sessions, 2), key=lambda session: session["index"])
    union = list(dict.fromkeys(first["key_concepts"] + second["key_concepts"]))
    # One concept from each session first, so both sessions are always in the question.
    picked = [rng.choice(first["key_concepts"])]
    picked.append(rng.choice([c for c in second["key_concepts"] if c not in picked] or second["key_concepts"]))
    rest = [concept for concept in union if concept not in picked]
    low = min(max(bounds.min, len(set(picked))), len(union))
    count = rng.randint(low, max(low, min(bounds.max, len(union))))
    chosen = set(picked) | set(rng.sample(rest, count - len(set(picked))))
    return [first, second], [concept for concept in union if concept in chosen]
