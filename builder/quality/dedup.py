"""Exact and near-duplicate removal of one discipline's questions: linear in their number, and a step at a time.

Exact duplicates are equal after `normalize`. Near duplicates: MinHash LSH proposes candidates and the Jaccard
similarity of the word-shingle sets decides, as datasketch's documentation advises for exact results. Questions are
taken in question_id order, exact duplicates first; a question within the threshold of a kept one is dropped, as a
duplicate of the lowest such question_id.

Linear even when every question is a near-twin of every other (a weak model writing one template with a few words
changed): every question then shares LSH bands with every kept one, and checking them all is quadratic. So a band's
bucket holds the first BUCKET_CAP kept questions only, and a question is checked against at most bands x BUCKET_CAP
of them (288 at the defaults). Until more than BUCKET_CAP kept questions share the values of one band the bound
changes nothing: the result is, row for row, that of datasketch's MinHash and MinHashLSH with each candidate
checked by exact Jaccard, as glan did it before (tests/test_quality.py compares the two). Past it, a near-twin whose
kept twins all lie beyond the bound in every band it shares with them survives: of 10,000 near-twins (one 24-word
template, 1 to 3 words changed) 3,155 survive instead of 2,961 (with BUCKET_CAP 8: 3,400 in 0.8x the time; 32:
3,050 in 1.4x the time at 10,000 questions, 1.7x at 40,000).

Cheap per question:
- the signatures of thousands of questions come from one numpy pass (datasketch's own MinHash, seeded, its affine32
  scheme: `MinHash.bulk` spends its time in numpy calls per question), and only their LSH bands are kept, each
  folded into one 8-byte key;
- a question's candidates are checked in one numpy pass over their shingle hashes (4 bytes per shingle: two
  questions' distinct shingles collide with a probability of about 1e-7);
- the buckets are two numpy arrays, not a list per bucket for the garbage collector to walk.
What dedup keeps of a question is its Fingerprints row (about 300 bytes), not its text.
tests/benchmarks/dedup_bench.py, load average 1-4 on 2 cores: near-twins in 0.91, 1.68 and 3.56 s of CPU at 10,000,
20,000 and 40,000 questions (before: 17.5 s and 113 s at 10,000 and 20,000), 32 MB of peak RSS at 40,000; 20,000
ordinary questions in 0.58 s (before: 1.97 s), dropping exactly the same rows.

A step at a time: the work is a generator (builder/quality/slices.py) that the build runs on its event loop, giving
the loop a turn every 2 ms, so the other units' requests go on while a unit's dedup runs. Measured with
dedup_bench's loop scenario (40,000 near-twins while the loop handles 128 requests in flight at 100 ms latency,
responses per second during the dedup as a share of the free loop's rate; the longest gap between two responses):
| how it runs                              | share | longest gap |
| before: a thread, quadratic (20,000)     | 61%   | 796 ms      |
| a thread                                 | 89%   | 46 ms       |
| a process (ProcessPoolExecutor, spawned) | 97%   | 63 ms       |
| the loop, a step at a time               | 95%   | 23 ms       |
A thread still competes with the loop for the GIL (each time the loop does I/O the thread takes it, for up to 5 ms).
A process leaves the loop most of its core, but ships the unit's rows both ways (the 63 ms gap: pickling 40,000
rows), starts in 1.2 s, and would be one more process per Ray worker, holding its own imports (185 MB); on a loaded
machine it fared worst (72-88% in three runs against 90-95% for the steps). The steps need nothing of that, and
give the loop its turn whatever the machine's load. In whole builds (tests/benchmarks/scale_bench.py, twins, 10
disciplines of ~3,000 near-twin questions, concurrency 128 at 100 ms) the rate was that of the same build with
ordinary questions (79-85% of the ideal), against 56-59% before.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Protocol, TypeVar

import numpy as np
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

from .slices import Slices, collected, run_to_end, sorted_in_slices
from .text import normalize

# Fixed so that every run on every machine drops the same rows.
MINHASH_SEED = 2402
# Weighting misses 99:1 makes the bands propose about 98.5% of the pairs at J = 0.8 instead of 40% with the
# default weights; the price is more candidates, and a candidate costs little (Fingerprints.jaccards).
CANDIDATE_WEIGHTS = (0.01, 0.99)
# The kept questions a band's bucket holds (the lowest question_ids): a question is compared with at most
# bands x BUCKET_CAP kept questions, however many share its bands.
BUCKET_CAP = 16
# Shingles signed in one step: about a millisecond of numpy, and a scratch array of SIGN_STEP x num_perm values.
SIGN_STEP = 8192


Item = TypeVar("Item", covariant=True)


class Reread(Protocol[Item]):
    """Items that can be counted and read more than once: a list, or a unit's spilled rows (builder/unit/spill.py),
    read a chunk at a time."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Item]: ...


@dataclass(frozen=True)
class Duplicate:
    row: dict
    reason: str  # "exact" or "near"
    duplicate_of: str  # question_id of the row that was kept


@dataclass(frozen=True)
class DedupResult:
    kept: list[dict]  # in input order
    dropped: list[Duplicate]  # in question_id order


def deduplicate(rows: list[dict], **settings) -> DedupResult:
    """`deduplicate_in_slices`, run to the end at once."""
    return run_to_end(deduplicate_in_slices(rows, **settings))


def deduplicate_in_slices(
    rows: list[dict],
    *,
    exact: bool = True,
    near: bool = True,
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle_words: int = 1,
) -> Slices[DedupResult]:
    """Keep the first of each group of duplicate questions, "first" meaning lowest question_id.

    Ordering by question_id rather than input order makes the survivor independent of how the rows were gathered.
    Exact duplicates are found first, so a row is only called "near" when its text really differs.
    """
    survivors = yield from duplicates_in_slices(
        rows, exact=exact, near=near, threshold=threshold, num_perm=num_perm, shingle_words=shingle_words
    )
    kept = yield from collected(row for index, row in enumerate(rows) if index not in survivors)
    dropped = yield from collected(
        Duplicate(rows[index], reason, rows[kept_index]["question_id"])
        for index, (reason, kept_index) in sorted(survivors.items(), key=lambda item: rows[item[0]]["question_id"])
    )
    return DedupResult(kept, dropped)


def duplicates_in_slices(
    rows: Reread[dict], *, exact: bool, near: bool, threshold: float, num_perm: int, shingle_words: int
) -> Slices[dict[int, tuple[str, int]]]:
    """Row index -> why it goes ("exact" or "near") and the row index of the one kept, of `rows` (sized, read
    twice: a unit's spilled rows, a chunk at a time); what is held meanwhile is each row's Fingerprints and id."""
    fingerprints = yield from fingerprint(rows, shingle_words, num_perm, *bands_and_rows(threshold, num_perm))
    question_ids = yield from collected(row["question_id"] for row in rows)  # read from disk: in slices too
    order = yield from sorted_in_slices(list(range(len(question_ids))), key=question_ids.__getitem__)
    survivors: dict[int, tuple[str, int]] = {}
    if exact:
        survivors.update((yield from _exact_duplicates(fingerprints.digests, order)))
    if near:
        remaining = yield from collected(index for index in order if index not in survivors)
        survivors.update((yield from _near_duplicates(fingerprints, np.array(remaining, dtype=np.int64), threshold)))
    return survivors


@dataclass(frozen=True)
class Fingerprints:
    """What dedup needs of each question, by row index; the text is not needed again. About 300 bytes a question
    of 30 words at the default settings: a digest of its normalised text, its MinHash signature's LSH bands folded
    into 8-byte keys (18 bands at threshold 0.8 and 128 permutations), and a 4-byte hash of each shingle."""

    digests: list[bytes]
    band_keys: np.ndarray  # (rows, bands) uint64
    shingle_hashes: np.ndarray  # uint32: each row's shingle hashes, sorted, one row after the other
    shingle_offsets: np.ndarray  # (rows + 1,): row i's hashes are shingle_hashes[offsets[i]:offsets[i + 1]]

    def jaccards(self, index: int, others: np.ndarray) -> np.ndarray:
        """The Jaccard similarity of row `index`'s shingle set with each of the rows `others`' (0 if both are
        empty): one numpy pass over all of them."""
        offsets, hashes = self.shingle_offsets, self.shingle_hashes
        mine = hashes[offsets[index] : offsets[index + 1]]
        if not len(mine):
            return np.zeros(len(others))
        starts, lengths = offsets[others], offsets[others + 1] - offsets[others]
        theirs = hashes[np.arange(lengths.sum()) + np.repeat(starts - np.cumsum(lengths) + lengths, lengths)]
        found = np.minimum(np.searchsorted(mine, theirs), len(mine) - 1)
        shared = np.bincount(np.repeat(np.arange(len(others)), lengths)[mine[found] == theirs], minlength=len(others))
        return shared / (len(mine) + lengths - shared)


def fingerprint(
    rows: Reread[dict], shingle_words: int, num_perm: int, bands: int, band_rows: int
) -> Slices[Fingerprints]:
    """The rows' fingerprints, a step per row; the signatures of SIGN_STEP shingles at a time."""
    permutations = _permutations(num_perm)
    digests: list[bytes] = []
    band_keys = np.empty((len(rows), bands), dtype=np.uint64)
    hash_of = _ShingleHashes()
    signed, batch, batch_size = 0, [], 0  # rows signed so far; the shingle hashes of the rows after them
    hash_blocks, lengths = [], np.zeros(len(rows) + 1, dtype=np.int64)
    for index, row in enumerate(rows):
        text = normalize(row["question"])
        digests.append(hashlib.blake2b(text.encode(), digest_size=16).digest())
        hashes = sorted(hash_of[shingle] for shingle in shingles(text.split(), shingle_words))
        batch.append(hashes)
        batch_size += len(hashes)
        lengths[index + 1] = len(hashes)
        if batch_size >= SIGN_STEP or index == len(rows) - 1:
            block = np.fromiter(chain.from_iterable(batch), dtype=np.uint32, count=batch_size)
            signatures = _signatures(block, lengths[signed + 1 : index + 2], permutations)
            band_keys[signed : index + 1] = _folded(signatures, bands, band_rows)
            hash_blocks.append(block)
            signed, batch, batch_size = index + 1, [], 0
        yield
    shingle_hashes = np.concatenate(hash_blocks) if hash_blocks else np.zeros(0, dtype=np.uint32)
    return Fingerprints(digests, band_keys, shingle_hashes, np.cumsum(lengths))


class _ShingleHashes(dict):
    """Shingle -> datasketch's default 32-bit hash (SHA-1's first 4 bytes), computed once per shingle."""

    def __missing__(self, shingle: str) -> int:
        value = self[shingle] = sha1_hash32(shingle.encode())
        return value


@functools.cache
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """The a and b of datasketch's affine32 permutations h -> a * h + b (mod 2^32) for MINHASH_SEED."""
    a, b = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme="affine32").permutations
    return a[:, np.newaxis], b[:, np.newaxis]


def _signatures(hashes: np.ndarray, lengths: np.ndarray, permutations: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(rows, num_perm) uint32: the MinHash signature of each row's `lengths` shingle hashes, one row after the other
    in `hashes`, as datasketch's `MinHash.bulk` gives it (affine32 scheme), at a few microseconds a row instead of
    tens (its numpy calls are per row)."""
    a, b = permutations
    signatures = np.full((len(lengths), len(a)), np.iinfo(np.uint32).max, dtype=np.uint32)  # an empty set's
    filled = lengths > 0
    if filled.any():
        permuted = a * _fmix32(hashes)  # (num_perm, shingles): the min over a row's shingles reads contiguous memory
        permuted += b
        signatures[filled] = np.minimum.reduceat(permuted, (np.cumsum(lengths) - lengths)[filled], axis=1).T
    return signatures


def _fmix32(hashes: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, which datasketch's affine32 scheme applies to each hash first."""
    hashes = hashes ^ (hashes >> np.uint32(16))
    hashes *= np.uint32(0x85EBCA6B)
    hashes ^= hashes >> np.uint32(13)
    hashes *= np.uint32(0xC2B2AE35)
    return hashes ^ (hashes >> np.uint32(16))


# Odd multipliers that fold a band's values into one 64-bit key. Two different bands that fold to the same key
# would only propose one more candidate, which its Jaccard similarity then rejects.
_FOLD = np.random.default_rng(MINHASH_SEED).integers(0, 2**63, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _folded(signatures: np.ndarray, bands: int, band_rows: int) -> np.ndarray:
    """(rows, bands) uint64: the first bands x band_rows values of each signature, cut into bands as datasketch's
    MinHashLSH cuts them, each band folded into one key."""
    values = signatures[:, : bands * band_rows].astype(np.uint64).reshape(len(signatures), bands, band_rows)
    return (values * _FOLD[:band_rows]).sum(axis=2)


def _exact_duplicates(digests: list[bytes], order: list[int]) -> Slices[dict[int, tuple[str, int]]]:
    first_with_digest: dict[bytes, int] = {}
    found = {}
    for index in order:
        first = first_with_digest.setdefault(digests[index], index)
        if first != index:
            found[index] = ("exact", first)
        yield
    return found


# The bands and rows for a threshold: datasketch integrates them numerically (~40 ms), and every discipline
# asks for the same (its dedup, and its near-twin figures for the held-out check, builder/quality/held_out.py).
@functools.cache
def bands_and_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=CANDIDATE_WEIGHTS)
    return lsh.b, lsh.r


def _near_duplicates(
    fingerprints: Fingerprints, remaining: np.ndarray, threshold: float
) -> Slices[dict[int, tuple[str, int]]]:
    """Row index -> ("near", row index of the kept row it is similar to), among the rows `remaining` (row indexes
    in question_id order); below, a row is named by its rank in `remaining`."""
    buckets = yield from _band_buckets(fingerprints.band_keys, remaining)
    kept = KeptBuckets(int(buckets.max(initial=-1)) + 1)
    found = {}
    # A row that shares no bucket can neither have nor be a near duplicate.
    for rank in np.flatnonzero((buckets >= 0).any(axis=1)).tolist():
        shared = buckets[rank][buckets[rank] >= 0]
        candidates = kept.candidates(shared)
        similar = candidates[fingerprints.jaccards(remaining[rank], remaining[candidates]) >= threshold]
        if similar.size:
            found[int(remaining[rank])] = ("near", int(remaining[similar.min()]))
        else:
            kept.insert(rank, shared)
        yield
    return found


def _band_buckets(band_keys: np.ndarray, remaining: np.ndarray) -> Slices[np.ndarray]:
    """(ranks, bands) bucket numbers: two rows share a bucket when they have the same key in a band, as in
    datasketch's MinHashLSH; a bucket that holds one row only is -1."""
    buckets = np.empty((len(remaining), band_keys.shape[1]), dtype=np.int64)
    numbered = 0
    for band in range(band_keys.shape[1]):
        _, bucket, sizes = np.unique(band_keys[remaining, band], return_inverse=True, return_counts=True)
        shared = sizes > 1
        buckets[:, band] = np.where(shared, np.cumsum(shared) - 1 + numbered, -1)[bucket]
        numbered += int(shared.sum())
        yield
    return buckets


class KeptBuckets:
    """The kept rows (by rank) in each shared bucket, the first BUCKET_CAP of each: two numpy arrays, rather than
    a list per bucket for the garbage collector to walk."""

    def __init__(self, buckets: int):
        self.members = np.full((buckets, BUCKET_CAP), -1, dtype=np.int32)
        self.sizes = np.zeros(buckets, dtype=np.int64)

    def candidates(self, buckets: np.ndarray) -> np.ndarray:
        members = set(self.members[buckets].ravel().tolist())
        members.discard(-1)
        return np.fromiter(members, dtype=np.int64, count=len(members))

    def insert(self, rank: int, buckets: np.ndarray) -> None:
        room = buckets[self.sizes[buckets] < BUCKET_CAP]
        self.members[room, self.sizes[room]] = rank
        self.sizes[room] += 1


def shingles(words: list[str], size: int) -> frozenset[str]:
    """Word n-grams of `size` words; a text shorter than that is one shingle."""
    if len(words) <= size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(map(" ".join, zip(*(words[start:] for start in range(size)), strict=False)))
