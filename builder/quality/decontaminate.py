"""Drop pairs that share words with a benchmark item, as the paper did before evaluating.

A pair is contaminated when its question or its answer holds, after `normalize`, a run of `ngram` words (13 by
default) of a benchmark item, or a whole item shorter than that: an item of `min_words` words or more (8 by
default) found whole, on word boundaries. Shorter items are not matched: "the sun" or "Which of the following is
true?" turn up in unrelated text too often to mean a copied benchmark item (docs/decontamination.md).

Every window of words is reduced to one 64-bit key, so that an index is a sorted array and matching a unit's pairs
is a few numpy passes (key every window of the lengths the benchmarks hold, then look the keys up in each
benchmark's index), never a loop over benchmark items.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from .text import normalized_words

SIDES = ("question", "answer")
# Texts are keyed in chunks of about this many words, so that a unit of 60,000 long answers never holds all its
# words as Python strings, nor all its window keys, at once; numpy's passes are as fast on chunks this long.
_CHUNK_WORDS = 250_000


@dataclass(frozen=True)
class BenchmarkIndex:
    """A benchmark's items as sorted unique window keys: every `ngram`-word run of an item that long, and every
    shorter item from `min_words` words up, whole. Built once per build and shared by every discipline."""

    name: str
    ngram: int
    min_words: int
    keys: np.ndarray  # uint64, sorted, unique
    lengths: tuple[int, ...]  # the window lengths (in words) a text is keyed at to meet these keys
    items: int  # texts read
    too_short: int  # texts under min_words words, which are not matched
    # A bit per slot (the top bits of a key), set where a key of the index falls, with at least 16 slots a key: a
    # key not in the index passes it 1 time in 16, and only the keys that pass are searched. Derived from `keys`.
    slot_bits: np.ndarray = field(repr=False, compare=False)

    def shared(self, sorted_keys: np.ndarray) -> np.ndarray:
        """The keys of `sorted_keys` that are in this index, in order."""
        if not len(self.keys):
            return sorted_keys[:0]
        # In key order, the slot lookups walk the bit array forward and the searches meet the index in the order it
        # is laid out: several times faster than the same work at random.
        slot = sorted_keys >> np.uint64(_slot_shift(self.slot_bits))
        passing = sorted_keys[(self.slot_bits[slot >> np.uint64(3)] >> (slot & np.uint64(7)).astype(np.uint8)) & 1 == 1]
        positions = np.minimum(np.searchsorted(self.keys, passing), len(self.keys) - 1)
        return passing[self.keys[positions] == passing]

    @property
    def fingerprint(self) -> str:
        """What decides this index's matches: a unit decontaminated against it is keyed by this."""
        digest = hashlib.sha256(self.keys.tobytes()).hexdigest()
        return f"{self.name}:{self.ngram}:{self.min_words}:{digest}"


def index_benchmark(name: str, texts: Iterable[str], ngram: int = 13, min_words: int = 8) -> BenchmarkIndex:
    keys, lengths, items, too_short = [], set(), 0, 0
    for chunk in _chunks(texts):
        words, word_counts = _word_hashes(chunk)
        items += len(chunk)
        too_short += int(np.count_nonzero(word_counts < min_words))
        window_keys, _ = _window_keys(words, word_counts, ngram)
        keys.append(window_keys)
        if len(window_keys):
            lengths.add(ngram)
        starts = np.cumsum(word_counts) - word_counts
        for length in range(min_words, ngram):  # short items, whole: the window at their first word
            short = starts[word_counts == length]
            if len(short):
                keys.append(_keys_at(words, short, length))
                lengths.add(length)
    all_keys = _sorted_unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.uint64)
    return BenchmarkIndex(
        name, ngram, min_words, all_keys, tuple(sorted(lengths)), items, too_short, _slot_bits(all_keys)
    )


def contaminated(
    pairs: Sequence[dict[str, str]], benchmarks: Sequence[BenchmarkIndex]
) -> dict[int, list[tuple[str, str]]]:
    """Pair index -> its (benchmark, side) hits, benchmarks in the order given and each side in `SIDES` order.

    A pair is {side: text}, e.g. {"question": ..., "answer": ...}; a side it lacks is not checked."""
    lengths = sorted({length for benchmark in benchmarks for length in benchmark.lengths})
    if not lengths:  # no benchmark, or none with an item long enough to match
        return {}
    found: set[tuple[int, int, int]] = set()  # (pair, side, benchmark) by position
    texts = [
        (pair_index, SIDES.index(side), text) for pair_index, pair in enumerate(pairs) for side, text in pair.items()
    ]
    for chunk in _chunks(texts, text_of=lambda entry: entry[2]):
        words, word_counts = _word_hashes([text for _, _, text in chunk])
        for length in lengths:
            window_keys, owners = _window_keys(words, word_counts, length)
            in_order = np.sort(window_keys)
            for benchmark_index, benchmark in enumerate(benchmarks):
                if length not in benchmark.lengths:
                    continue
                shared = benchmark.shared(in_order)
                if len(shared):  # rare: which windows, hence which texts, hold them
                    for owner in np.unique(owners[np.isin(window_keys, shared)]).tolist():
                        pair_index, side_index, _ = chunk[owner]
                        found.add((pair_index, side_index, benchmark_index))
    hits: dict[int, list[tuple[str, str]]] = {}
    for pair_index, side_index, benchmark_index in sorted(found, key=lambda hit: (hit[0], hit[2], hit[1])):
        hits.setdefault(pair_index, []).append((benchmarks[benchmark_index].name, SIDES[side_index]))
    return hits


def pair_texts(row: dict) -> dict[str, str]:
    """The sides of a row: an instruction keeps its question and answer in `messages` (user, then assistant);
    a question row has its question only."""
    if "messages" in row:
        return {"question": row["messages"][0]["content"], "answer": row["messages"][1]["content"]}
    return {"question": row["question"]}


@dataclass(frozen=True)
class Contaminated:
    row: dict
    hits: tuple[tuple[str, str], ...]  # (benchmark, side), benchmarks in the order given

    @property
    def benchmark(self) -> str:
        """The first benchmark, in the order given, the pair shares words with."""
        return self.hits[0][0]


@dataclass(frozen=True)
class DecontamResult:
    kept: list[dict]  # in input order
    dropped: list[Contaminated]  # in input order
    # benchmark -> side -> pairs whose side shares words with it, for every side checked (0s included); a pair may
    # count for several benchmarks and both sides
    hits: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def hits_per_benchmark(self) -> dict[str, int]:
        """Benchmark -> pairs that share words with it on either side."""
        return {name: sum(any(hit == name for hit, _ in drop.hits) for drop in self.dropped) for name in self.hits}


def decontaminate(
    rows: list[dict], benchmarks: Sequence[BenchmarkIndex], texts_of: Callable[[dict], dict[str, str]] = pair_texts
) -> DecontamResult:
    """Drop every row whose question or answer (`texts_of`) shares words with a benchmark item."""
    pairs = [texts_of(row) for row in rows]
    found = contaminated(pairs, benchmarks)
    sides = [side for side in SIDES if any(side in pair for pair in pairs)] or [SIDES[0]]
    hits = {benchmark.name: dict.fromkeys(sides, 0) for benchmark in benchmarks}
    for pair_hits in found.values():
        for name, side in pair_hits:
            hits[name][side] += 1
    return DecontamResult(
        kept=[row for index, row in enumerate(rows) if index not in found],
        dropped=[Contaminated(rows[index], tuple(found[index])) for index in sorted(found)],
        hits=hits,
    )


def _chunks(items: Iterable, text_of: Callable = lambda text: text) -> Iterable[list]:
    """`items` in lists of about `_CHUNK_WORDS` words (counted by spaces: a cheap bound, before normalising)."""
    chunk, words = [], 0
    for item in items:
        chunk.append(item)
        words += text_of(item).count(" ") + 1
        if words >= _CHUNK_WORDS:
            yield chunk
            chunk, words = [], 0
    if chunk:
        yield chunk


def _word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every word of every text (after `normalize`), hashed, end to end; and the word count of each text."""
    words_per_text = [normalized_words(text) for text in texts]
    word_counts = np.fromiter(map(len, words_per_text), dtype=np.int64, count=len(words_per_text))
    words = np.fromiter(
        map(_WordHashes().__getitem__, chain.from_iterable(words_per_text)),
        dtype=np.uint64,
        count=int(word_counts.sum()),
    )
    return words, word_counts


class _WordHashes(dict):
    """word -> its stable hash, computed once per distinct word."""

    def __missing__(self, word: str) -> int:
        self[word] = hashed = _stable_hash(word)
        return hashed


def _window_keys(words: np.ndarray, word_counts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The key of every run of `length` words inside one text, and the index of that text."""
    count = len(words) - length + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    owners = np.repeat(np.arange(len(word_counts)), word_counts)
    inside = owners[:count] == owners[length - 1 :]
    keys = np.full(count, _salt(length), dtype=np.uint64)
    for offset, factor in enumerate(_factors(length)):  # every window at once, then those inside one text
        keys += words[offset : offset + count] * factor
    return keys[inside], owners[:count][inside]


def _keys_at(words: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """The keys of the windows of `length` words starting at `starts` (the same key `_window_keys` gives)."""
    keys = np.full(len(starts), _salt(length), dtype=np.uint64)
    for offset, factor in enumerate(_factors(length)):
        keys += words[starts + offset] * factor
    return keys


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    # np.unique hashes first (numpy 2.3+): ten times slower than a sort for millions of 64-bit keys.
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def _slot_bits(keys: np.ndarray) -> np.ndarray:
    width = max(10, int(len(keys) * 16).bit_length())  # 2**width slots: at least 16 a key
    taken = np.zeros(1 << width, dtype=bool)
    taken[keys >> np.uint64(64 - width)] = True
    return np.packbits(taken, bitorder="little")


def _slot_shift(slots: np.ndarray) -> int:
    return 64 - (len(slots) * 8).bit_length() + 1


# A window's key is sum(word * factor[position]) + salt[length] over uint64, which wraps: with odd pseudo-random
# factors and a salt per length, two different windows share a key with a probability of about 2**-64.
@functools.cache
def _factors(length: int) -> tuple[np.uint64, ...]:
    return tuple(np.uint64(_stable_hash(f"position {offset}") | 1) for offset in range(length))


@functools.cache
def _salt(length: int) -> np.uint64:
    return np.uint64(_stable_hash(f"length {length}"))


def _stable_hash(text: str) -> int:
    # blake2b, not hash(): the same word gets the same number in every process (a Ray worker matches against keys
    # the driver built).
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
