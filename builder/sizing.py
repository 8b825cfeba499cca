"""`--pairs N`: the run sized to about N train pairs of the instructions config.

Three settings decide how many pairs a discipline yields: subject requests (`subjects.samples`), each giving
`subjects.per_sample` subjects on average; questions per subject (`questions.per_subject`, one answer each); and the
held-out test split (`quality.test_split.per_discipline`). Sizing chooses the samples and questions per subject for
each number of disciplines, and keeps, in this order of preference:

1. a train-pair count within TOLERANCE of N (the closest one when none is);
2. at least MIN_PER_SUBJECT questions per subject (or the settings' number, if smaller): below it, a pair costs
   about three requests instead of two, as subjects and syllabi are spread over fewer questions;
3. as many of the selected disciplines as that allows (the breadth GLAN is for), an even spread of them in
   taxonomy order when some must go;
4. questions per subject as near the settings' as the target allows (the paper's shape: many questions per
   subject), then the fewest subject requests.

The test split is capped at HELD_OUT_SHARE of N (at least one question per discipline, never more than the
settings say): the paper's 50 per discipline would hold out more than a small run trains on. Dedup and
failures drop a few percent more; the estimate counts them once responses are cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config.settings import Generation
from .taxonomy import DisciplineRef

TOLERANCE = 0.05
MIN_PER_SUBJECT = 5
HELD_OUT_SHARE = 0.05
# The settings --pairs chooses: a --set of one of them would be overridden, so asking for both is refused.
SIZED_KEYS = ("subjects.samples", "questions.per_subject", "quality.test_split.per_discipline")


@dataclass(frozen=True)
class Size:
    disciplines: int
    samples: int  # subject requests per discipline
    per_subject: int  # questions per subject
    held_out: int  # test questions per discipline
    subjects_per_sample: float  # the mean of subjects.per_sample

    @property
    def pairs_per_discipline(self) -> float:
        """Train and test pairs of one discipline, by the settings."""
        return self.samples * self.subjects_per_sample * self.per_subject

    @property
    def train_pairs(self) -> float:
        return self.disciplines * max(0.0, self.pairs_per_discipline - self.held_out)


def size_for(generation: Generation, selectable: int, pairs: int) -> Size:
    """The size nearest `pairs` train pairs over at most `selectable` disciplines, by the preferences above."""
    per_sample = (generation.subjects.per_sample.min + generation.subjects.per_sample.max) / 2
    preferred = generation.questions.per_subject
    floor = min(preferred, MIN_PER_SUBJECT)
    best: tuple | None = None
    for disciplines in range(selectable, 0, -1):
        held_out = min(
            generation.quality.test_split.per_discipline,
            max(1, math.ceil(HELD_OUT_SHARE * pairs / disciplines)),
        )
        per_discipline = pairs / disciplines + held_out  # train and test
        for samples in range(1, max(1, math.ceil(per_discipline / per_sample)) + 1):
            exact = per_discipline / (samples * per_sample)
            for per_subject in {max(1, math.floor(exact)), max(1, math.ceil(exact))}:
                size = Size(disciplines, samples, per_subject, held_out, per_sample)
                error = abs(size.train_pairs - pairs) / pairs
                key = (
                    math.floor(error / TOLERANCE),
                    per_subject < floor,
                    -disciplines,
                    abs(math.log(per_subject / preferred)),
                    samples,
                )
                if best is None or key < best[0]:
                    best = (key, size)
        if best is not None and best[0][:2] == (0, False):  # fewer disciplines would only rank after this
            break
    assert best is not None  # selectable >= 1
    return best[1]


def sized(generation: Generation, disciplines: list[DisciplineRef], pairs: int) -> tuple[Generation, list]:
    """The settings and disciplines of a run of about `pairs` train pairs."""
    size = size_for(generation, len(disciplines), pairs)
    chosen = [disciplines[index * len(disciplines) // size.disciplines] for index in range(size.disciplines)]
    quality = generation.quality
    return (
        generation.model_copy(
            update={
                "subjects": generation.subjects.model_copy(update={"samples": size.samples}),
                "questions": generation.questions.model_copy(update={"per_subject": size.per_subject}),
                "quality": quality.model_copy(
                    update={"test_split": quality.test_split.model_copy(update={"per_discipline": size.held_out})}
                ),
            }
        ),
        chosen,
    )
