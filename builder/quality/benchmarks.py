"""The benchmarks decontamination checks against, read once per build: a Hugging Face dataset through
`datasets.load_dataset` (so the user's Hugging Face cache and HF_HUB_OFFLINE work as everywhere else), or a local
.jsonl, .jsonl.gz, .parquet or .csv file. Only the texts of the configured columns are kept, and only while one
benchmark is indexed; a benchmark that cannot be read stops the build with one BenchmarkError line.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path

import datasets
import huggingface_hub
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub.errors import HfHubHTTPError

from ..config.settings import Benchmark, Decontamination
from ..errors import UserError
from ..project import SHIPPED_TAXONOMY
from .decontaminate import BenchmarkIndex, index_benchmark

_WHERE = "generation.quality.decontamination.benchmarks"
_TEXT_TYPES = (pa.string(), pa.large_string())
_PROBE_TIMEOUT_S = 10
# What glan reads of a local benchmark file at most: its size as stored, and the text a .jsonl.gz unpacks to (an index
# of a benchmark of 1 GiB of text takes a few GiB of memory; the largest of the shipped benchmarks is ~160 MB).
MAX_BENCHMARK_BYTES = 1 << 30


class BenchmarkError(UserError):
    """A benchmark that cannot be read; str(e) names it, says why, and what to do."""


def load_benchmarks(settings: Decontamination) -> list[BenchmarkIndex]:
    """Every configured benchmark, read and indexed in the order given."""
    on_the_hub = [benchmark for benchmark in settings.benchmarks if benchmark.dataset]
    if on_the_hub and not datasets.config.HF_HUB_OFFLINE:
        _check_hub_reachable(on_the_hub)
    return [load_benchmark(benchmark, settings.ngram, settings.min_words) for benchmark in settings.benchmarks]


def shipped_benchmark_names() -> list[str]:
    """The benchmarks glan's shipped taxonomy checks: a run that leaves one out names it as unchecked."""
    generation = yaml.safe_load(SHIPPED_TAXONOMY.read_text(encoding="utf-8"))["generation"]
    return [benchmark["name"] for benchmark in generation["quality"]["decontamination"]["benchmarks"]]


def load_benchmark(benchmark: Benchmark, ngram: int = 13, min_words: int = 8) -> BenchmarkIndex:
    texts = _hub_texts(benchmark) if benchmark.dataset else _file_texts(benchmark)
    return index_benchmark(benchmark.name, texts, ngram, min_words)


# -- the Hugging Face Hub -------------------------------------------------------------------------------------


def _hub_texts(benchmark: Benchmark) -> Iterator[str]:
    for config in benchmark.configs:
        splits = _load_config(benchmark, config)
        for split in benchmark.splits:
            if split not in splits:
                raise _spec_error(
                    benchmark, config, split, f"no split {split!r} (splits: {', '.join(splits)})", "splits"
                )
            table = splits[split]
            for column in benchmark.text_columns:
                if column not in table.column_names:
                    raise _spec_error(
                        benchmark,
                        config,
                        split,
                        f"no column {column!r} (columns: {', '.join(table.column_names)})",
                        "text_columns",
                    )
                values = table.data.column(column)
                if values.type not in _TEXT_TYPES:
                    raise _spec_error(
                        benchmark, config, split, f"column {column!r} holds {values.type}, not text", "text_columns"
                    )
                for chunk in values.chunks:
                    yield from filter(None, chunk.to_pylist())


def _check_hub_reachable(benchmarks: list[Benchmark]) -> None:
    """Once, up front: behind a dead network each config would cost huggingface_hub's retries (about 23 s) before
    datasets falls back to its cache, minutes for the shipped list."""
    first = benchmarks[0]
    assert first.dataset is not None  # a Hub benchmark (Benchmark's validator)
    try:
        huggingface_hub.HfApi().dataset_info(first.dataset, revision=first.revision, timeout=_PROBE_TIMEOUT_S)
    except HfHubHTTPError:
        pass  # the Hub answered; loading says what is wrong with this benchmark, if anything
    except Exception as error:  # noqa: BLE001 -- a refused connection, DNS, TLS, a proxy: the Hub is out of reach
        names = ", ".join(f'"{benchmark.name}"' for benchmark in benchmarks)
        raise BenchmarkError(
            f"benchmarks {names}: the Hugging Face Hub ({huggingface_hub.constants.ENDPOINT}) cannot be reached "
            f"({type(error).__name__}: {_first_line(error)}). Either set HF_HUB_OFFLINE=1 to read them from the "
            "Hugging Face cache (pre-fetch them where the Hub is reachable: docs/decontamination.md) or point each "
            f"at a local copy (path: FILE), or remove them from {_WHERE}."
        ) from None


def _load_config(benchmark: Benchmark, config: str) -> datasets.DatasetDict:
    """Every split of one config, as datasets prepares it (memory-mapped Arrow in the cache)."""
    offline = datasets.config.HF_HUB_OFFLINE
    try:
        with _quiet():
            splits = datasets.load_dataset(benchmark.dataset, config, revision=benchmark.revision)
    except DatasetNotFoundError as error:  # no such repo (or gated, private), or no such revision
        raise _unavailable(benchmark, config, f"not found on the Hub ({_first_line(error)})") from None
    except ConnectionError as error:  # what datasets raises when offline or unreachable, OfflineModeIsEnabled too
        why = (
            "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
            if offline
            else f"the Hub cannot be reached ({_first_line(error)})"
        )
        raise _unavailable(benchmark, config, why) from None
    except ValueError as error:
        message = _first_line(error)
        if message.startswith("BuilderConfig"):  # "BuilderConfig 'x' not found. Available: [...]"
            raise _spec_error(benchmark, config, None, f"no config {config!r} ({message})", "configs") from None
        if offline and message.startswith("Couldn't find cache"):  # another config of it is cached, not this one
            raise _unavailable(
                benchmark, config, "HF_HUB_OFFLINE is set and this config is not in the Hugging Face cache"
            ) from None
        raise _unavailable(benchmark, config, f"datasets could not load it (ValueError: {message})") from None
    except Exception as error:  # noqa: BLE001 -- whatever datasets or the Hub raise: one line, never a traceback
        raise _unavailable(
            benchmark, config, f"datasets could not load it ({type(error).__name__}: {_first_line(error)})"
        ) from None
    cached_revision = _cached_revision(splits)
    if cached_revision not in (None, benchmark.revision):  # offline, datasets falls back to the newest cached copy
        raise _unavailable(
            benchmark,
            config,
            f"HF_HUB_OFFLINE is set and the Hugging Face cache holds revision {cached_revision}, not this one",
        )
    return splits


def _cached_revision(splits: datasets.DatasetDict) -> str | None:
    """The commit a Hub dataset was prepared from: datasets names its cache folder after it."""
    for split in splits.values():
        for cache_file in split.cache_files:
            return Path(cache_file["filename"]).parent.name
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Offline, datasets warns twice per config that it reads its cache, and it draws a bar per split it prepares:
    over the shipped list's 40 configs, some 80 lines that would bury glan's own."""
    verbosity, bars = datasets.logging.get_verbosity(), datasets.is_progress_bar_enabled()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()


def _described(benchmark: Benchmark, config: str, split: str | None) -> str:
    where = f"config {config}" + (f", split {split}" if split else "")
    assert benchmark.revision is not None  # a Hub benchmark has one (Benchmark's validator)
    return f'benchmark "{benchmark.name}" ({benchmark.dataset} at {benchmark.revision[:12]}, {where})'


def _unavailable(benchmark: Benchmark, config: str, why: str) -> BenchmarkError:
    fetch = (
        f"python -c \"import datasets; datasets.load_dataset('{benchmark.dataset}', '{config}', "
        f"revision='{benchmark.revision}')\""
    )
    return BenchmarkError(
        f"{_described(benchmark, config, None)}: {why}. Either pre-fetch it where the Hub is reachable ({fetch} "
        "fills the Hugging Face cache under HF_HOME; copy that folder here) or point the entry at a local copy "
        f'(path: FILE), or remove "{benchmark.name}" from {_WHERE}.'
    )


def _spec_error(benchmark: Benchmark, config: str, split: str | None, why: str, key: str) -> BenchmarkError:
    return BenchmarkError(
        f'{_described(benchmark, config, split)}: {why}. Fix its "{key}", or remove "{benchmark.name}" from {_WHERE}.'
    )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# -- local files ----------------------------------------------------------------------------------------------


def _file_texts(benchmark: Benchmark) -> Iterator[str]:
    assert benchmark.path is not None  # a file benchmark (Benchmark's validator)
    path = Path(benchmark.path)
    try:  # a regular file of a bounded size: a FIFO waited forever, /dev/zero filled memory
        status = path.stat()
    except OSError as error:
        raise _unreadable(path, error) from None
    if not stat.S_ISREG(status.st_mode):
        raise _unreadable(path, "not a regular file")
    if status.st_size > MAX_BENCHMARK_BYTES:
        raise _unreadable(path, _too_big())
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return _jsonl_texts(path, benchmark.text_columns)
    if path.suffix == ".parquet":
        return _parquet_texts(path, benchmark.text_columns)
    return _csv_texts(path, benchmark.text_columns)


def _jsonl_texts(path: Path, columns: list[str]) -> Iterator[str]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as file:
            for line_number, line in enumerate(_bounded_lines(file, path), start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise BenchmarkError(
                        f"{where}: not valid JSON ({error.msg}). Write one JSON object per line."
                    ) from None
                if not isinstance(record, dict):
                    raise BenchmarkError(f"{where}: expected a JSON object, found {type(record).__name__}.")
                for column in columns:
                    if column not in record:
                        raise _missing_column(where, column, list(record))
                    if text := _checked_text(record[column], where, column):
                        yield text
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise _unreadable(path, error) from None


def _bounded_lines(file, path: Path) -> Iterator[str]:
    """`file`'s lines, MAX_BENCHMARK_BYTES characters of them at most (a .gz of a few MB can unpack to any size)."""
    left = MAX_BENCHMARK_BYTES
    while line := file.readline(left + 1):
        left -= len(line)
        if left < 0:
            raise _unreadable(path, _too_big())
        yield line


def _too_big() -> str:
    return f"more than {MAX_BENCHMARK_BYTES:,} bytes, the most glan reads of one"


def _parquet_texts(path: Path, columns: list[str]) -> Iterator[str]:
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None
    yield from _table_texts(path, columns, names, lambda: pq.read_table(path, columns=columns))


def _csv_texts(path: Path, columns: list[str]) -> Iterator[str]:
    try:
        names = pa_csv.open_csv(path).schema.names
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None
    convert = pa_csv.ConvertOptions(include_columns=columns, column_types=dict.fromkeys(columns, pa.string()))
    yield from _table_texts(path, columns, names, lambda: pa_csv.read_csv(path, convert_options=convert))


def _table_texts(path: Path, columns: list[str], names: list[str], read) -> Iterator[str]:
    for column in columns:
        if column not in names:
            raise _missing_column(str(path), column, names)
    try:
        table = read()  # the text columns only
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None
    for column in columns:
        for row, value in enumerate(table.column(column).to_pylist()):
            if text := _checked_text(value, f"{path}: row {row}", column):
                yield text


def _unreadable(path: Path, error: Exception | str) -> BenchmarkError:
    return BenchmarkError(f"{path}: cannot read benchmark file ({error}). Check the path in {_WHERE}.")


def _missing_column(where: str, column: str, columns: list[str]) -> BenchmarkError:
    return BenchmarkError(
        f"{where}: no column {column!r} (columns: {', '.join(columns)}). Set text_columns to the "
        "columns that hold the benchmark's texts."
    )


def _checked_text(value, where: str, column: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BenchmarkError(f"{where}: column {column!r} holds {type(value).__name__}, expected text.")
    return value
