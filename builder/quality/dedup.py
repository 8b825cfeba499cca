"""Exact and near-duplicate removal of questions, within and across subjects and disciplines."""

import functools
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from .text import normalize

# Fixed so that every run on every machine drops the same rows.
MINHASH_SEED = 2402
# The LSH index only proposes candidates; each is confirmed by the exact Jaccard of the shingle
# sets (datasketch's own advice for exact results). Weighting misses 99:1 makes the index propose
# about 98.5% of the pairs at J = 0.8 instead of 40% with the default weights; the price is a few
# more set comparisons, which are cheap.
CANDIDATE_WEIGHTS = (0.01, 0.99)


# The bands and rows for a threshold: datasketch integrates them numerically (~40 ms), and every discipline
# asks for the same.
@functools.cache
def _bands_and_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=CANDIDATE_WEIGHTS)
    return lsh.b, lsh.r


@dataclass(frozen=True)
class Duplicate:
    row: dict
    reason: str  # "exact" or "near"
    duplicate_of: str  # question_id of the row that was kept


@dataclass(frozen=True)
class DedupResult:
    kept: list[dict]  # in input order
    dropped: list[Duplicate]  # in question_id order


def deduplicate(
    rows: list[dict],
    *,
    exact: bool = True,
    near: bool = True,
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle_words: int = 1,
) -> DedupResult:
    """Keep the first of each group of duplicate questions, "first" meaning lowest question_id.

    Ordering by question_id rather than input order makes the survivor independent of how the
    rows were gathered. Exact duplicates (equal after `normalize`) are found first, so a row is
    only called "near" when its text really differs.
    """
    texts = [normalize(row["question"]) for row in rows]
    order = sorted(range(len(rows)), key=lambda index: rows[index]["question_id"])
    dropped: dict[int, Duplicate] = {}
    if exact:
        dropped.update(_exact_duplicates(rows, texts, order))
    if near:
        remaining = [index for index in order if index not in dropped]
        dropped.update(_near_duplicates(rows, texts, remaining, threshold, num_perm, shingle_words))
    return DedupResult(
        kept=[row for index, row in enumerate(rows) if index not in dropped],
        dropped=[dropped[index] for index in order if index in dropped],
    )


def _exact_duplicates(rows, texts, order) -> dict[int, Duplicate]:
    first_with_text: dict[str, int] = {}
    found = {}
    for index in order:
        first = first_with_text.setdefault(texts[index], index)
        if first != index:
            found[index] = Duplicate(rows[index], "exact", rows[first]["question_id"])
    return found


def _near_duplicates(rows, texts, order, threshold, num_perm, shingle_words) -> dict[int, Duplicate]:
    shingle_sets = [shingles(texts[index].split(), shingle_words) for index in order]
    minhashes = MinHash.generator(
        ([shingle.encode() for shingle in shingle_set] for shingle_set in shingle_sets),
        num_perm=num_perm,
        seed=MINHASH_SEED,
    )
    index_of_kept = BandIndex(*_bands_and_rows(threshold, num_perm))
    shingles_of_kept: dict[int, frozenset[str]] = {}
    found = {}
    for index, shingle_set, minhash in zip(order, shingle_sets, minhashes, strict=True):
        bands = index_of_kept.bands(minhash)
        matches = [
            candidate
            for candidate in index_of_kept.candidates(bands)
            if jaccard(shingle_set, shingles_of_kept[candidate]) >= threshold
        ]
        if matches:
            survivor = min(matches, key=lambda candidate: rows[candidate]["question_id"])
            found[index] = Duplicate(rows[index], "near", rows[survivor]["question_id"])
        else:
            index_of_kept.insert(index, bands)
            shingles_of_kept[index] = shingle_set
    return found


class BandIndex:
    """MinHash LSH: each signature cut into `bands` bands of `rows` values; the candidates of a signature are
    the items that share a whole band with it. The banding of datasketch's MinHashLSH, which costs a numpy
    call per band and refers to itself (so its tables wait for the cyclic garbage collector); here a
    signature's bytes are cut once, and the tables are plain dicts that go when the index does."""

    def __init__(self, bands: int, rows: int):
        self.rows = rows
        self.tables: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]

    def bands(self, minhash: MinHash) -> list[bytes]:
        values = minhash.hashvalues
        width = self.rows * values.itemsize
        signature = values.tobytes()
        return [signature[band * width : (band + 1) * width] for band in range(len(self.tables))]

    def candidates(self, bands: list[bytes]) -> set[int]:
        found: set[int] = set()
        for band, table in zip(bands, self.tables, strict=True):
            found.update(table.get(band, ()))
        return found

    def insert(self, item: int, bands: list[bytes]) -> None:
        for band, table in zip(bands, self.tables, strict=True):
            table.setdefault(band, []).append(item)


def shingles(words: list[str], size: int) -> frozenset[str]:
    """Word n-grams of `size` words; a text shorter than that is one shingle."""
    if len(words) <= size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[start : start + size]) for start in range(len(words) - size + 1))


def jaccard(first: frozenset, second: frozenset) -> float:
    shared = len(first & second)
    union = len(first) + len(second) - shared
    return shared / union if union else 0.0
