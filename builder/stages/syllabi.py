from datasets import Features, List, Value

from ..schemas import PROVENANCE, SUBJECT, syllabus_model
from .base import Output, Stage, clean, subject_lineage


class Syllabi(Stage):
    """One syllabus per subject: class sessions, each with a description and its key concepts."""

    name, config = "syllabus", "syllabi"
    features = Features(
        {
            **SUBJECT,
            "sessions": List(
                {
                    "index": Value("int32"),
                    "title": Value("string"),
                    "description": Value("string"),
                    "key_concepts": List(Value("string")),
                }
            ),
            **PROVENANCE,
        }
    )
    output = Output(
        "Syllabus",
        lambda settings: syllabus_model(
            settings.syllabus.sessions.min,
            settings.syllabus.sessions.max,
            settings.syllabus.key_concepts.min,
            settings.syllabus.key_concepts.max,
        ),
    )
    example = {
        "sessions": [
            {
                "title": f"Example session {number}",
                "description": "What the session teaches.",
                "key_concepts": [f"concept {number}a", f"concept {number}b"],
            }
            for number in (1, 2)
        ]
    }

    def item_id(self, subject):
        return subject["subject_id"]

    def context(self, subject):
        settings = self.ctx.settings.syllabus
        return {
            **subject,
            "min_sessions": settings.sessions.min,
            "max_sessions": settings.sessions.max,
            "min_concepts": settings.key_concepts.min,
            "max_concepts": settings.key_concepts.max,
        }

    def parse(self, subject, values):
        sessions = [
            {
                "index": index,
                "title": clean(session.title),
                "description": session.description.strip(),
                "key_concepts": _unique(clean(concept) for concept in session.key_concepts),
            }
            for index, session in enumerate(values[0].sessions)
        ]
        return [{**subject_lineage(subject), "sessions": sessions, **self.ctx.provenance()}]


def _unique(concepts):
    seen, kept = set(), []
    for concept in concepts:
        if concept and concept.casefold() not in seen:
            seen.add(concept.casefold())
            kept.append(concept)
    return kept
