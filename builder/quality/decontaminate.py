"""Drop questions that share a word n-gram with a benchmark item, as the paper did before evaluating."""

import hashlib
import json
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from .text import normalize


class BenchmarkError(UserError):
    """A benchmark file the user named cannot be used; str(e) names the file and what to do."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Contaminated:
    row: dict
    benchmark: str  # the first benchmark, in the order given, that shares an n-gram


@dataclass(frozen=True)
class DecontamResult:
    kept: list[dict]  # in input order
    dropped: list[Contaminated]  # in input order
    hits_per_benchmark: dict[str, int]  # questions sharing an n-gram with it; one question may hit several


def load_benchmark(path: str | Path, text_column: str, name: str | None = None) -> Benchmark:
    """Read the text column of a .jsonl or .parquet file; `name` defaults to the file's stem."""
    path = Path(path)
    if path.suffix == ".jsonl":
        texts = _read_jsonl(path, text_column)
    elif path.suffix == ".parquet":
        texts = _read_parquet(path, text_column)
    else:
        raise BenchmarkError(f"{path}: unsupported benchmark format {path.suffix!r}. Give a .jsonl or .parquet file.")
    return Benchmark(name or path.stem, tuple(texts))


def _read_jsonl(path: Path, text_column: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise _unreadable(path, error) from error
    texts = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BenchmarkError(f"{where}: not valid JSON ({error.msg}). Write one JSON object per line.") from error
        if not isinstance(record, dict):
            raise BenchmarkError(f"{where}: expected a JSON object, found {type(record).__name__}.")
        if text_column not in record:
            raise _missing_column(where, text_column, list(record))
        texts.append(_checked_text(record[text_column], where, text_column))
    return texts


def _read_parquet(path: Path, text_column: str) -> list[str]:
    try:
        columns = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from error
    if text_column not in columns:
        raise _missing_column(str(path), text_column, columns)
    values = pq.read_table(path, columns=[text_column]).column(text_column).to_pylist()
    return [_checked_text(value, f"{path}: row {row}", text_column) for row, value in enumerate(values)]


def _unreadable(path: Path, error: Exception) -> BenchmarkError:
    return BenchmarkError(f"{path}: cannot read benchmark file ({error}). Check the path in decontamination.benchmarks.")


def _missing_column(where: str, text_column: str, columns: list[str]) -> BenchmarkError:
    return BenchmarkError(
        f"{where}: no column {text_column!r} (columns: {', '.join(columns)}). "
        "Set text_column to the column that holds the benchmark text."
    )


def _checked_text(value, where: str, text_column: str) -> str:
    if not isinstance(value, str):
        raise BenchmarkError(f"{where}: column {text_column!r} holds {type(value).__name__}, expected text.")
    return value


@dataclass(frozen=True)
class BenchmarkIndex:
    """A benchmark's word n-grams (after `normalize`), as sorted unique 8-byte hashes: built once per build
    and shared by every discipline."""

    name: str
    ngram: int
    hashes: np.ndarray


def index_benchmark(benchmark: Benchmark, ngram: int = 13) -> BenchmarkIndex:
    hashes = np.fromiter(chain.from_iterable(ngram_hashes(text, ngram) for text in benchmark.texts), dtype=np.uint64)
    return BenchmarkIndex(benchmark.name, ngram, np.unique(hashes))


def decontaminate(rows: list[dict], benchmarks: list[BenchmarkIndex]) -> DecontamResult:
    """Drop every question with a word n-gram (after `normalize`) found in any benchmark item.

    Questions and items shorter than the n-gram have none and so never match.
    """
    hits = contaminated(rows, benchmarks)
    return DecontamResult(
        kept=[row for index, row in enumerate(rows) if index not in hits],
        dropped=[Contaminated(rows[index], hits[index][0]) for index in sorted(hits)],
        hits_per_benchmark={benchmark.name: sum(benchmark.name in names for names in hits.values())
                            for benchmark in benchmarks},
    )


def contaminated(rows: list[dict], benchmarks: list[BenchmarkIndex]) -> dict[int, list[str]]:
    """Row index -> the names of the benchmarks it shares an n-gram with, in the order given."""
    hits: dict[int, list[str]] = {}
    for ngram in dict.fromkeys(benchmark.ngram for benchmark in benchmarks):
        hashes_per_row = [ngram_hashes(row["question"], ngram) for row in rows]
        question_hashes = np.fromiter(chain.from_iterable(hashes_per_row), dtype=np.uint64)
        owner_of_hash = np.repeat(np.arange(len(rows)), [len(hashes) for hashes in hashes_per_row])
        for benchmark in benchmarks:
            if benchmark.ngram == ngram:
                for index in np.unique(owner_of_hash[np.isin(question_hashes, benchmark.hashes)]).tolist():
                    hits.setdefault(index, []).append(benchmark.name)
    order = {benchmark.name: position for position, benchmark in enumerate(benchmarks)}
    return {index: sorted(names, key=order.__getitem__) for index, names in hits.items()}


def ngram_hashes(text: str, ngram: int) -> list[int]:
    words = normalize(text).split()
    return [_stable_hash(" ".join(words[start : start + ngram])) for start in range(len(words) - ngram + 1)]


def _stable_hash(gram: str) -> int:
    # blake2b, not hash(): the same n-gram gets the same number in every process.
    return int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
