"""The held-out GLAN-Test split: N questions per discipline, never also in train."""

import hashlib
from collections import defaultdict
from collections.abc import Iterable


def held_out_ids(rows: Iterable[dict], *, per_discipline: int = 50) -> set[str]:
    """The question_ids of the test split: per discipline, the `per_discipline` lowest sha256(question_id).

    Each discipline is ranked on its own, so adding a discipline moves nothing in another one.
    A hash rank rather than a seeded shuffle: a question's place depends on its id alone.
    """
    ids_by_discipline: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        ids_by_discipline[row["discipline_id"]].add(row["question_id"])
    held_out = set()
    for question_ids in ids_by_discipline.values():
        held_out.update(sorted(question_ids, key=_rank)[:per_discipline])
    return held_out


def _rank(question_id: str) -> str:
    return hashlib.sha256(question_id.encode()).hexdigest()
