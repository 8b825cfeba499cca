"""The content-addressed response cache.

SQLite files in WAL mode. A response is committed before the request that got it goes on (in an event
loop, with the others that arrived in the same pass of the loop: one transaction instead of one each, a
tenth of a build's CPU at 1,000 requests/s), so SIGKILL loses at most what was in flight. Raw text is
stored, never the parsed object: a parser fix never re-pays a call.
A damaged file (truncated, overwritten, corrupted pages) is a CacheDamaged error the moment SQLite meets
the damage; `glan cache check` (builder/llm/cache_check.py) keeps what can still be read.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..errors import UserError
from ..ids import canonical_json

UNIT_CACHES = "cache"  # the folder of the work dir that holds one cache file per discipline
SHARED_CACHE = "cache.sqlite"  # the Batch API's answers, glan 0.1's responses, each endpoint's mode
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL,
    finish_reason TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL, cached_tokens INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS endpoint_modes (endpoint TEXT PRIMARY KEY, mode TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Response:
    """A reply as the cache keeps it. It comes from an endpoint (or a cache file glan may not have written), so it
    is checked as it is made: a text SQLite can store (a str without lone surrogates), a finish reason that is a
    str or nothing, and token counts that are non-negative integers (a budget adds them up), the cached ones no more
    than the prompt's. Anything else raises ValueError saying which field is wrong."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of prompt_tokens, those the endpoint served from its prefix cache (billed at a discount)

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise ValueError(f"the content is {kind_of(self.text)}, not a string")
        try:
            self.text.encode()
        except UnicodeEncodeError:
            raise ValueError("the content holds a lone surrogate, which is not text") from None
        if self.finish_reason is not None and not isinstance(self.finish_reason, str):
            raise ValueError(f"finish_reason is {kind_of(self.finish_reason)}, not a string")
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            count = getattr(self, name)
            if type(count) is not int or count < 0:  # not isinstance: True is an int to Python
                raise ValueError(f"usage {name} is {count!r:.40}, not a whole number of at least 0")
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError(
                f"usage cached_tokens {self.cached_tokens} is more than the {self.prompt_tokens} prompt tokens"
            )


def kind_of(value) -> str:
    """What a JSON or SQLite value is, for a message: "null", "a list", "an int"."""
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


class CacheDamaged(UserError):
    def __init__(self, path: Path, error: sqlite3.DatabaseError):
        super().__init__(
            f"{path}: the response cache is damaged ({error}): the responses in its damaged part cannot be read, "
            f"and a build would pay for them again. Run `glan cache check --work-dir {work_dir_of(path)}` to keep "
            "what can still be read (the damaged file is kept aside), then run the same command again."
        )


class CacheEntryUnreadable(UserError):
    def __init__(self, path: Path, key: str, problem: str):
        super().__init__(
            f"{path}: the cached response {key} cannot be read ({problem}); an older glan or another program wrote "
            f"it. Run `glan cache check --work-dir {work_dir_of(path)}` to move such responses aside (into a file "
            "beside the cache), then run the same command again: it sends those requests again."
        )


def is_damage(error: sqlite3.DatabaseError) -> bool:
    # sqlite3 raises exactly DatabaseError for SQLITE_CORRUPT and SQLITE_NOTADB; a locked, full or read-only
    # file is an OperationalError.
    return type(error) is sqlite3.DatabaseError


def _damage_is_an_error(method):
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            raise CacheDamaged(self.path, error) from None

    return guarded


def cache_key(
    *, model: str, messages: list[dict[str, str]], params: dict, schema: dict | None, sample_index: int, attempt: int
) -> str:
    """Everything that shapes the response and nothing that doesn't (no URL, key or concurrency): the sha256 of
    the canonical JSON (keys sorted, no spaces, UTF-8) of {attempt, messages, model, params, sample_index, schema}.

    The messages, most of those bytes, are written by orjson, which writes strings exactly as the standard
    library does (tests/test_cache_key.py checks every code point) in a twentieth of the time; the rest by the
    standard library, whose floats (1e-05) orjson would write otherwise (1e-5)."""
    messages_json = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS).decode()
    canonical = (
        f'{{"attempt":{attempt:d},"messages":{messages_json},"model":{canonical_json(model)},'
        f'"params":{canonical_json(params)},"sample_index":{sample_index:d},"schema":{canonical_json(schema)}}}'
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class Cache:
    """One SQLite file. A unit's cache (`<work dir>/cache/<discipline_id>.sqlite`, written only by the process
    running that unit) falls back on the work dir's shared `cache.sqlite`, which holds the responses of Batch
    API batches (the build's driver collects them), those of glan 0.1 work dirs, and each endpoint's mode."""

    @_damage_is_an_error
    def __init__(self, path: Path, fallback: Cache | None = None, *, read_only: bool = False):
        """`read_only`: how a Ray worker opens the shared cache, which the driver closed (so its WAL was folded in)
        and does not write while the workers run: immutable, so SQLite writes nothing beside it, not even locks,
        and any node can read it over a shared filesystem. Modes the worker discovers stay in its memory. An
        estimate reads this way too, writing nothing: a file with a WAL beside it (a build is running, or was
        killed) is read with that WAL, whose files exist already; a file that does not exist reads as empty."""
        self.path = Path(path)
        self.fallback = fallback
        self.read_only = read_only
        self._modes: dict[str, str] = {}
        if read_only and not self.path.exists():
            self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self.db.executescript(_SCHEMA)
        elif read_only:
            live = Path(f"{self.path}-wal").exists()
            self.db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro{'' if live else '&immutable=1'}",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process kill (only an OS crash may drop the last commits).
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            _add_cached_tokens(self.db)
        if read_only and not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='responses'").fetchone():
            # What a writer would have made on opening; read only, a file without it is cut short or not glan's.
            raise sqlite3.DatabaseError("no responses table: the file is cut short or is not a glan cache")
        # A file of glan 0.2 opened read-only has no cached_tokens column: its responses count none.
        self._cached_tokens = cached_tokens_column(self.db)
        self._select = (
            f"SELECT text, finish_reason, prompt_tokens, completion_tokens, {self._cached_tokens} "
            "FROM responses WHERE key=?"
        )
        # A cache that was empty when opened holds exactly the keys put since: a fresh unit's lookups (all
        # misses) cost no query, and a shared cache with no response costs no second lookup.
        self.has_responses = self.db.execute("SELECT 1 FROM responses LIMIT 1").fetchone() is not None
        self._put_since_empty: set[str] | None = None if self.has_responses else set()
        # Put and not committed yet: key -> (stage, model, response, when it was put).
        self._unwritten: dict[str, tuple[str, str, Response, float]] = {}

    @_damage_is_an_error
    def get(self, key: str) -> Response | None:
        if key in self._unwritten:
            return self._unwritten[key][2]
        row = None
        if self._put_since_empty is None or key in self._put_since_empty:
            try:
                row = self.db.execute(self._select, (key,)).fetchone()
            except sqlite3.OperationalError as error:
                if not str(error).startswith("Could not decode to UTF-8"):
                    raise
                raise CacheEntryUnreadable(self.path, key, "its text is not UTF-8") from None
        if row is None and self.fallback is not None and self.fallback.has_responses:
            return self.fallback.get(key)
        if row is None:
            return None
        try:
            return Response(*row)
        except ValueError as error:
            raise CacheEntryUnreadable(self.path, key, str(error)) from None

    @_damage_is_an_error
    def put(self, key: str, stage: str, model: str, response: Response) -> None:
        """In an event loop, committed by a callback that runs before the task that put it goes on (it yields
        first: Engine.complete); elsewhere, at once."""
        self._unwritten[key] = (stage, model, response, time.time())
        self.has_responses = True
        if self._put_since_empty is not None:
            self._put_since_empty.add(key)
        if len(self._unwritten) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.commit)
            except RuntimeError:  # no event loop in this thread (Batch API answers are read in a thread)
                self.commit()

    @_damage_is_an_error
    def commit(self) -> None:
        """Writes what was put since the last commit, in one transaction."""
        if not self._unwritten:
            return
        rows = [
            (
                key,
                stage,
                model,
                response.text,
                response.finish_reason,
                response.prompt_tokens,
                response.completion_tokens,
                created,
                response.cached_tokens,
            )
            for key, (stage, model, response, created) in self._unwritten.items()
        ]
        self._unwritten = {}
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?)", rows)
        self.db.execute("COMMIT")

    @_damage_is_an_error
    def token_sums_by_stage(self) -> dict[str, tuple[int, int, int, int]]:
        """`token_sums` of every stage with cached responses, in one pass over the file."""
        rows = self.db.execute(
            "SELECT stage, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
            f"SUM({self._cached_tokens}) FROM responses GROUP BY stage"
        ).fetchall()
        return {
            stage: (count, prompt or 0, completion or 0, cached or 0)
            for stage, count, prompt, completion, cached in rows
        }

    @_damage_is_an_error
    def mode(self, endpoint: str) -> str | None:
        if endpoint in self._modes:
            return self._modes[endpoint]
        row = self.db.execute("SELECT mode FROM endpoint_modes WHERE endpoint=?", (endpoint,)).fetchone()
        return row[0] if row else None

    @_damage_is_an_error
    def remember_mode(self, endpoint: str, mode: str) -> None:
        if self.read_only:
            self._modes[endpoint] = mode
        else:
            self.db.execute("INSERT OR REPLACE INTO endpoint_modes VALUES (?,?)", (endpoint, mode))

    def close(self) -> None:
        self.commit()
        self.db.close()


def cached_tokens_column(db: sqlite3.Connection) -> str:
    """What a SELECT reads for a response's cached prompt tokens: the cached_tokens column, or 0 in a file of glan
    0.2 or before, which has no such column (its responses count none) until a writer adds it."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    return "cached_tokens" if "cached_tokens" in columns else "0"


def _add_cached_tokens(db: sqlite3.Connection) -> None:
    """A cache file of glan 0.2 or before has no cached_tokens column: added (0 for its responses, which glan did not
    ask about)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    if "cached_tokens" not in columns:
        db.execute("ALTER TABLE responses ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")


def shared_cache_path(work_dir: Path) -> Path:
    return Path(work_dir) / SHARED_CACHE


def unit_cache_path(work_dir: Path, discipline_id: str) -> Path:
    return Path(work_dir) / UNIT_CACHES / f"{discipline_id}.sqlite"


def work_dir_of(path: Path) -> Path:
    """The work dir of a cache file: a unit's (unit_cache_path) or the shared cache.sqlite."""
    return path.parent.parent if path.parent.name == UNIT_CACHES else path.parent
