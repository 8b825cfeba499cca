"""A unit's rows of one config between its stages: appended as a stage makes them, read back a chunk at a time.

Rows go to an Arrow IPC file (the config's Arrow schema) in the unit's staging folder, CHUNK_ROWS at a time, so a
unit holds a chunk of rows however many it makes; an estimate (no folder: it writes nothing) keeps the same file in
memory. The staging folder is scratch: a killed build's is removed by UnitStore.clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CHUNK_ROWS = 1_000
SPILL_SUFFIX = ".arrow"


class Spill:
    """Rows of one config, in the order they were added; `close()` before reading them."""

    def __init__(self, schema: pa.Schema, path: Path | None = None, on_chunk: Callable[[int], None] | None = None):
        """`on_chunk(bytes)` is told what a full chunk of these rows takes in memory, once it is known."""
        self.schema, self.path, self.on_chunk = schema, path, on_chunk
        self._sink = pa.OSFile(str(path), "wb") if path is not None else pa.BufferOutputStream()
        self._writer = pa.ipc.new_file(self._sink, schema)
        self._chunk: list[dict] = []
        self._rows = 0
        self._data: pa.Buffer | None = None

    def __len__(self) -> int:
        return self._rows

    def add(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self._chunk.append(row)
            if len(self._chunk) >= CHUNK_ROWS:
                self._flush()

    def close(self) -> Spill:
        if self._writer is not None:
            self._flush()
            self._writer.close()
            self._data = None if self.path is not None else self._sink.getvalue()
            self._sink.close()
            self._writer = None
        return self

    def chunks(self) -> Iterator[list[dict]]:
        """The rows, a record batch (CHUNK_ROWS rows at most) at a time: read from the file, not mapped, so that
        what was read is freed with the chunk."""
        source = pa.OSFile(str(self.path)) if self.path is not None else pa.BufferReader(self._data)
        with source, pa.ipc.open_file(source) as reader:
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index).to_pylist()

    def __iter__(self) -> Iterator[dict]:
        for chunk in self.chunks():
            yield from chunk

    def write_parquet(self, path: Path) -> int:
        """The rows as one parquet file, byte for byte what `pq.write_table(pa.Table.from_pylist(rows, schema))`
        writes: its pages are cut where the writer's batches end, so the table goes in one chunk as from_pylist
        makes it (the IPC file is mapped, and only the combined table takes memory). Returns its Arrow bytes."""
        source = pa.memory_map(str(self.path)) if self.path is not None else pa.BufferReader(self._data)
        with source, pa.ipc.open_file(source) as reader:
            table = reader.read_all().combine_chunks()
        pq.write_table(table, path)
        return table.nbytes

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _flush(self) -> None:
        if self._chunk:
            if not self._rows and self.on_chunk is not None:  # the first chunk's rows stand for the others
                self.on_chunk(sum(map(deep_size, self._chunk)) * CHUNK_ROWS // len(self._chunk))
            self._writer.write_batch(pa.RecordBatch.from_pylist(self._chunk, schema=self.schema))
            self._rows += len(self._chunk)
            self._chunk = []


def deep_size(value) -> int:
    """What a value takes as Python objects (strings, lists and dicts; shared strings counted again: an upper
    bound)."""
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(deep_size(key) + deep_size(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return sys.getsizeof(value) + sum(deep_size(item) for item in value)
    return sys.getsizeof(value)
