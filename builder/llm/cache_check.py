"""`glan cache check`: SQLite's integrity check of a work dir's cache files (the shared cache.sqlite and
one per discipline under cache/) and, for each that fails, a salvage; then, in every file, the responses
glan cannot read are moved aside.

The salvage copies every row SQLite can still read into a new file, table by table, walking each table
in rowid order and stepping over the rowids that sit in damaged pages; the damaged file (with its WAL)
is kept aside under a new name, and the new file takes its place. Responses that could not be read are
simply missing from the cache: the next build sends those requests again.

A response glan cannot read (a text that is not a UTF-8 string, usage that is not a count of at least 0 or that
counts more cached prompt tokens than prompt tokens: what an older glan kept of a hostile reply, or another program
wrote) would stop every build that meets it. Such rows move, as they are, into `<name>.unreadable-<time>` beside
the file (an SQLite file of the same table), so nothing is lost; the next build sends their requests again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .cache import UNIT_CACHES, Cache, Response, cached_tokens_column, is_damage, shared_cache_path

_BATCH = 500
_LARGEST_ROWID = 2**63 - 1  # SQLite numbers rows from 1 up to this


@dataclass
class TableSalvage:
    table: str
    copied: int
    stored: int | None  # the table's own row count, when the damage left it countable


@dataclass
class CheckResult:
    path: Path
    problems: list[str]  # empty: SQLite found nothing wrong
    tables: list[TableSalvage]
    kept_as: Path | None  # where the damaged file went
    unreadable: list[str] = field(default_factory=list)  # why each response glan cannot read was moved aside
    moved_to: Path | None = None  # where they went

    def summary(self) -> str:
        """What was damaged, kept and lost (only for a damaged file)."""
        lines = [
            f"{self.path}: damaged: {self.problems[0]}"
            + (f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else "")
        ]
        for salvaged in self.tables:
            lost = (
                "an unknown number lost" if salvaged.stored is None else f"{salvaged.stored - salvaged.copied:,} lost"
            )
            lines.append(f"  {salvaged.table}: {salvaged.copied:,} rows kept, {lost}")
        if not self.tables:
            lines.append("  nothing could be read: the cache starts empty")
        lines.append(f"  the damaged file is kept as {self.kept_as}; {self.path} now holds what could be read")
        return "\n".join(lines)

    def unreadable_summary(self) -> str:
        """How many responses were moved aside, and why the first could not be read."""
        return (
            f"{self.path}: {len(self.unreadable):,} responses glan cannot read (the first: "
            f"{self.unreadable[0]}), moved to {self.moved_to}"
        )


def cache_files(work_dir: Path) -> list[Path]:
    shared = shared_cache_path(work_dir)
    return ([shared] if shared.is_file() else []) + sorted((work_dir / UNIT_CACHES).glob("*.sqlite"))


def check(path: Path) -> CheckResult:
    """Check the cache at `path`; when damaged, replace it by what could be read and keep the damaged file. Then
    move the responses glan cannot read aside."""
    result = CheckResult(path, _problems(path), [], None)
    if result.problems:
        salvage = path.with_name(path.name + ".salvage")
        salvage.unlink(missing_ok=True)
        result.tables = _salvage(path, salvage)
        result.kept_as = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("-wal", "-shm", ""):  # the WAL belongs to the damaged file: it moves with it
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{result.kept_as}{suffix}")
        os.replace(salvage, path)
    result.unreadable, result.moved_to = _move_unreadable(path)
    return result


def _move_unreadable(path: Path) -> tuple[list[str], Path | None]:
    """Moves the responses Cache.get would refuse into a file beside `path`; returns why each was refused and
    where they went."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        cached_tokens = cached_tokens_column(db)  # 0 in a file of glan 0.2, which has no such column
        db.text_factory = bytes  # decoded here, where a text that is not UTF-8 is a reason, not an exception
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='responses'").fetchone():
            return [], None  # a salvage that found nothing
        unreadable = {
            rowid: problem
            for rowid, *entry in db.execute(
                "SELECT rowid, typeof(text), text, typeof(finish_reason), finish_reason, prompt_tokens, "
                f"completion_tokens, {cached_tokens} FROM responses"
            )
            if (problem := _unreadable(*entry))
        }
        if not unreadable:
            return [], None
        moved_to = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        Cache(moved_to).close()  # the cache's own tables
        db.execute("ATTACH DATABASE ? AS aside", (str(moved_to),))
        db.execute("CREATE TEMP TABLE moving (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO moving VALUES (?)", ((rowid,) for rowid in unreadable))
        # Copied, committed, then deleted: a kill in between leaves a copy too many, never one too few.
        # By name: a file of glan 0.2 has no cached_tokens column (its responses count none).
        columns = ", ".join(row[1].decode() for row in db.execute("PRAGMA main.table_info(responses)"))
        db.execute(
            f"INSERT OR REPLACE INTO aside.responses ({columns}) SELECT {columns} FROM main.responses "
            "WHERE rowid IN moving"
        )
        db.execute("DELETE FROM main.responses WHERE rowid IN moving")
        db.execute("DETACH DATABASE aside")
        return list(unreadable.values()), moved_to
    finally:
        db.close()


def _unreadable(
    text_type: bytes, text, reason_type: bytes, finish_reason, prompt_tokens, completion_tokens, cached_tokens
) -> str | None:
    """Why Cache.get would refuse this row, or None."""
    try:
        Response(
            text.decode() if text_type == b"text" else text,
            finish_reason.decode() if reason_type == b"text" else finish_reason,
            prompt_tokens,
            completion_tokens,
            cached_tokens,
        )
    except UnicodeDecodeError:
        return "its text is not UTF-8"
    except ValueError as error:
        return str(error)
    return None


def _read_only(path: Path) -> sqlite3.Connection:
    # Read-only: closing a writable connection would checkpoint the WAL into the damaged file.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _problems(path: Path) -> list[str]:
    db = _read_only(path)
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as error:
        if not is_damage(error):
            raise
        return [str(error)]
    finally:
        db.close()
    return [] if rows == [("ok",)] else [row[0] for row in rows]


def _salvage(damaged_path: Path, salvage_path: Path) -> list[TableSalvage]:
    damaged = _read_only(damaged_path)
    damaged.text_factory = bytes  # a damaged text is a lost row, not an exception in the middle of a table
    salvage = sqlite3.connect(salvage_path, isolation_level=None)
    try:
        try:
            schema = damaged.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            schema = []  # the first page is gone: nothing says what the file held
        tables = []
        salvage.execute("BEGIN")  # one commit: the file only counts once it replaces the damaged one
        for name, sql in schema:
            table = name.decode()
            salvage.execute(sql.decode())
            copied = 0
            for rows in _readable_rows(damaged, table):
                salvage.executemany(f'INSERT INTO "{table}" VALUES ({",".join("?" * len(rows[0]))})', rows)
                copied += len(rows)
            tables.append(TableSalvage(table, copied, _count(damaged, table)))
        salvage.execute("COMMIT")
        return tables
    finally:
        damaged.close()
        salvage.close()


def _readable_rows(db: sqlite3.Connection, table: str) -> Iterator[list[tuple]]:
    """Batches of the rows SQLite can read, in rowid order, with texts decoded; damaged stretches skipped."""
    after, batch = 0, _BATCH
    while True:
        try:
            rows = db.execute(
                f'SELECT rowid, * FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT ?', (after, batch)
            ).fetchall()
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            if batch > 1:  # read up to the damage one row at a time
                batch = 1
                continue
            past = _past_damage(db, table, after)
            if past is None:
                return
            after = past
            batch = _BATCH
            continue
        if not rows:
            return
        after = rows[-1][0]
        decoded = [row for row in map(_decoded, rows) if row is not None]
        if decoded:
            yield decoded


def _past_damage(db: sqlite3.Connection, table: str, after: int) -> int | None:
    """The smallest rowid r > after from which reading works again (the rows in between are lost), or None
    when nothing past `after` can be read: gallop forward, then bisect back."""
    step, bad = 1, after
    while not _readable_after(db, table, after + step):
        bad = after + step
        step *= 2
        if after + step >= _LARGEST_ROWID:
            return None
    good = after + step
    while good - bad > 1:
        middle = (good + bad) // 2
        if _readable_after(db, table, middle):
            good = middle
        else:
            bad = middle
    return good


def _readable_after(db: sqlite3.Connection, table: str, rowid: int) -> bool:
    try:
        db.execute(f'SELECT * FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT 1', (rowid,)).fetchall()
        return True
    except sqlite3.DatabaseError as error:
        if not is_damage(error):
            raise
        return False


def _decoded(row: tuple) -> tuple | None:
    """The row without its rowid, texts decoded; None when a damaged text is not UTF-8."""
    try:
        return tuple(value.decode() if isinstance(value, bytes) else value for value in row[1:])
    except UnicodeDecodeError:
        return None


def _count(db: sqlite3.Connection, table: str) -> int | None:
    try:
        return db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    except sqlite3.DatabaseError as error:
        if not is_damage(error):
            raise
        return None
