from datasets import Features, List, Value

from ..ids import content_id
from ..schemas import PROVENANCE, SUBJECT, subject_list_model
from .base import Output, Stage, clean, lineage


class Subjects(Stage):
    """Subjects per discipline: several samples merged, exact repeats (name and level) dropped."""

    name, config = "subjects", "subjects"
    features = Features({**SUBJECT, "subtopics": List(Value("string")), **PROVENANCE})
    output = Output(
        "SubjectList",
        lambda settings: subject_list_model(
            settings.levels, settings.subjects.per_sample.min, settings.subjects.per_sample.max
        ),
    )
    example = {"subjects": [{"name": "Example subject", "level": "introductory", "subtopics": ["example topic"]}]}

    @staticmethod
    def requests_per_input(settings):
        return settings.subjects.samples

    @staticmethod
    def rows_per_request(settings):
        return (settings.subjects.per_sample.min + settings.subjects.per_sample.max) / 2

    def item_id(self, discipline):
        return discipline["discipline_id"]

    def samples(self, discipline):
        return list(range(self.ctx.settings.subjects.samples))

    def context(self, discipline):
        bounds = self.ctx.settings.subjects.per_sample
        return {
            **discipline,
            "levels": self.ctx.settings.levels,
            "min_subjects": bounds.min,
            "max_subjects": bounds.max,
        }

    def parse(self, discipline, values):
        rows, seen = [], set()
        for subject in (subject for value in values for subject in value.subjects):
            name = clean(subject.name)
            identity = (name.casefold(), subject.level)
            if identity in seen:
                continue
            seen.add(identity)
            rows.append(
                {
                    "subject_id": content_id(discipline["discipline_id"], *identity),
                    **lineage(discipline),
                    "subject": name,
                    "level": subject.level,
                    "subtopics": [clean(topic) for topic in subject.subtopics],
                    **self.ctx.provenance(),
                }
            )
        return rows
