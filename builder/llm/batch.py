"""OpenAI Batch API mode: the requests of batch stages answered by batches at half the price, resumably.

While the units run, every request of a batch stage whose next attempt is missing from the cache becomes
one JSONL line (custom_id = its cache key, body = exactly what the engine would post), spooled to a chunk
file in the work dir; the unit then waits. Lines of many disciplines share a chunk, up to the API's per-file
limits. Between rounds the chunks are uploaded and submitted, and every saved batch is polled until it
ends; answers are written into the cache under their keys, so the next round's units replay them. A line a
batch left unanswered goes online (`batch_fallback: online`) or into the next round's batches
(`batch_fallback: batch`) when resending can help (expired, cancelled, server errors), and becomes the
item's failure when it cannot (a request the API refused).

Resuming across processes and days: each chunk is saved in the work dir's SQLite db before its upload, its
input file id before the batch is created, and its batch id right after, together with the endpoint it
went to. The batch carries the chunk id in its metadata, so a batch created just before a kill (before its
id was saved) is found again by listing batches. A later run waits for saved batches instead of
submitting their lines again, on the endpoint that has them, whatever --base-url it is given.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import openai

from ..errors import UserError
from .attempts import Attempts, LLMResult
from .cache import Cache
from .reply import read_completion, redact

log = logging.getLogger("glan")

# The Batch API's input file limits.
MAX_FILE_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1000 * 1000
CHAT_URL = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")
FIRST_POLL_S = 0.5  # doubled on every poll up to the configured interval: small batches finish fast
# Rounds a line may go through batches with `batch_fallback: batch` before it counts as failed; each round
# can take the whole 24 h window on the real API.
MAX_BATCH_TRIES = 3
# Line errors that resending can fix; any other error code is the request's own fault.
_RETRYABLE_CODES = {"batch_expired", "batch_cancelled", "rate_limit_exceeded", "server_error", "timeout"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    chunk_id TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, base_url TEXT NOT NULL,
    api_key_env TEXT NOT NULL, keys TEXT NOT NULL, input_file_id TEXT, batch_id TEXT,
    status TEXT NOT NULL, counts TEXT, collected INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
"""


class BatchError(UserError):
    """A Batch API call was refused; the message says which endpoint and what to do."""


@dataclass
class SavedBatch:
    chunk_id: str
    stage: str
    model: str
    base_url: str
    api_key_env: str
    keys: list[str]
    input_file_id: str | None
    batch_id: str | None
    status: str  # "preparing" until the batch exists, then the API's status
    counts: dict | None
    collected: bool
    created: float


class BatchStore:
    """The `batches` table in the work dir's cache db: what was submitted, and whether it was read back."""

    def __init__(self, cache: Cache):
        self.db = cache.db
        self.db.executescript(_SCHEMA)

    def add(self, batch: SavedBatch) -> None:
        self.db.execute(
            "INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                batch.chunk_id,
                batch.stage,
                batch.model,
                batch.base_url,
                batch.api_key_env,
                json.dumps(batch.keys),
                batch.input_file_id,
                batch.batch_id,
                batch.status,
                None,
                0,
                batch.created,
            ),
        )

    def update(self, batch: SavedBatch) -> None:
        self.db.execute(
            "UPDATE batches SET input_file_id=?, batch_id=?, status=?, counts=?, collected=? WHERE chunk_id=?",
            (
                batch.input_file_id,
                batch.batch_id,
                batch.status,
                json.dumps(batch.counts),
                int(batch.collected),
                batch.chunk_id,
            ),
        )

    def all(self) -> list[SavedBatch]:
        rows = self.db.execute("SELECT * FROM batches ORDER BY created")
        return [
            SavedBatch(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                json.loads(row[5]),
                row[6],
                row[7],
                row[8],
                json.loads(row[9]) if row[9] else None,
                bool(row[10]),
                row[11],
            )
            for row in rows
        ]


def client(base_url: str, api_key_env: str, max_retries: int = 2, timeout_s: float = 60) -> openai.OpenAI:
    # Local servers take no key; OpenAI answers a missing one with a 401 that names the problem.
    return openai.OpenAI(
        base_url=base_url,
        api_key=os.environ.get(api_key_env) or "no-key-set",
        max_retries=max_retries,
        timeout=timeout_s,
    )


def refused(batch: SavedBatch, action: str, error: openai.APIError) -> BatchError:
    return BatchError(
        f"{batch.base_url}: Batch API {action} failed: {redact(str(error), os.environ.get(batch.api_key_env))}. "
        "Check the endpoint supports the OpenAI Files and Batch APIs and the key in its api_key_env, or build "
        "without --batch (and `batch: false` per stage)."
    )


@dataclass
class _Chunk:
    """Lines spooled for one input file: one stage, model and endpoint."""

    saved: SavedBatch
    path: Path
    size: int = 0


class BatchRunner:
    def __init__(self, engine, poll_s: float, fallbacks: dict[str, str]):
        self.engine = engine
        self.cache, self.limits, self.accounting = engine.cache, engine.limits, engine.accounting
        self.store = BatchStore(engine.cache)
        self.poll_s = poll_s
        self.fallbacks = fallbacks  # stage -> "online" or "batch"
        self.spool = Path(self.cache.path).parent / "batches"
        shutil.rmtree(self.spool, ignore_errors=True)  # lines a killed build spooled: never saved, collected again
        self.chunks: dict[tuple[str, str, str], _Chunk] = {}  # (stage, model, base_url) -> chunk being filled
        self.full: list[_Chunk] = []
        # Keys a saved batch still has to answer: their units wait for it instead of collecting them again.
        self.in_batches = {
            key for batch in self.store.all() if not batch.collected and batch.input_file_id for key in batch.keys
        }
        self.unanswered: dict[str, str] = {}  # key -> why a finished batch did not answer it
        self.tries: dict[str, int] = {}  # key -> batches it went through in this build
        self.held = 0.0  # worst costs of the lines collected since the last batches ended

    def take(self, stage: str, route, attempts: Attempts) -> LLMResult | None:
        """What becomes of a request whose next attempt is missing: None sends it online; otherwise the result
        (batched: it waits for a batch; skipped: the budget is spent; failed: the batch refused it)."""
        key = attempts.key
        if key in self.in_batches:
            return LLMResult(batched=True, attempts=attempts.attempt)
        if key in self.unanswered:
            reason = self.unanswered[key]
            if not reason.startswith(tuple(_RETRYABLE_CODES)):
                return LLMResult(failure=f"batch: {reason}", attempts=attempts.attempt + 1)
            if self.fallbacks.get(stage, "online") == "online":
                return None
            if self.tries.get(key, 0) >= MAX_BATCH_TRIES:
                return LLMResult(failure=f"batch: {reason} ({MAX_BATCH_TRIES} batches)", attempts=attempts.attempt + 1)
        worst_cost = self.accounting.worst_cost(route.model, attempts.request.messages, attempts.params) / 2
        if stop := self.accounting.budget_exhausted(worst_cost):  # at the batch price, held until the batch ends
            self.engine.stop_reason = stop
            return LLMResult(skipped=True, attempts=attempts.attempt)
        self.accounting.reserved += worst_cost
        self.held += worst_cost
        endpoint = route.endpoints[0]  # one Batch API: a batch cannot be spread over endpoints
        body = self.engine.request_body(
            route.model, attempts.request, attempts.params, key, endpoint, self.engine.mode(endpoint)
        )
        self._spool(
            stage, route.model, endpoint, key, {"custom_id": key, "method": "POST", "url": CHAT_URL, "body": body}
        )
        self.accounting.usage(stage, route.model).requests += 1
        self.tries[key] = self.tries.get(key, 0) + 1
        self.in_batches.add(key)
        return LLMResult(batched=True, attempts=attempts.attempt)

    def _spool(self, stage: str, model: str, endpoint, key: str, line: dict) -> None:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        chunk = self.chunks.get((stage, model, endpoint.base_url))
        if chunk and (len(chunk.saved.keys) == MAX_FILE_REQUESTS or chunk.size + len(data) > MAX_FILE_BYTES):
            self.full.append(self.chunks.pop((stage, model, endpoint.base_url)))
            chunk = None
        if chunk is None:
            saved = SavedBatch(
                secrets.token_hex(8),
                stage,
                model,
                endpoint.base_url,
                endpoint.api_key_env,
                [],
                None,
                None,
                "preparing",
                None,
                False,
                time.time(),
            )
            self.spool.mkdir(exist_ok=True)
            chunk = self.chunks[(stage, model, endpoint.base_url)] = _Chunk(
                saved, self.spool / f"{saved.chunk_id}.jsonl"
            )
        with open(chunk.path, "ab") as out:
            out.write(data)
        chunk.saved.keys.append(key)
        chunk.size += len(data)

    def submit_and_wait(self) -> None:
        """Submit the spooled chunks, then wait for every saved batch not read back yet, and read them back."""
        for chunk in [*self.full, *self.chunks.values()]:
            self._submit(chunk)
        self.full, self.chunks = [], {}
        waiting = []
        for batch in self.store.all():
            if not batch.collected and self._exists(batch):
                waiting.append(batch)
        self._wait(waiting)
        self.in_batches.clear()
        self.accounting.reserved -= self.held  # the answers' own costs are counted now
        self.held = 0.0

    def _submit(self, chunk: _Chunk) -> None:
        batch = chunk.saved
        self.store.add(batch)
        api = client(batch.base_url, batch.api_key_env, self.limits.max_retries, self.limits.timeout_s)
        try:
            with open(chunk.path, "rb") as data:
                batch.input_file_id = api.files.create(file=(chunk.path.name, data), purpose="batch").id
        except openai.APIError as error:
            raise refused(batch, "file upload", error) from error
        self.store.update(batch)
        self._create(api, batch)
        chunk.path.unlink()
        self._say(f"{batch.stage}: submitted batch {batch.batch_id} ({len(batch.keys):,} requests)")

    def _exists(self, batch: SavedBatch) -> bool:
        """Whether the saved batch is on its endpoint; one a kill interrupted is found or created now."""
        if batch.batch_id is not None:
            return True
        api = self._api(batch)
        found = find_by_chunk(api, batch)  # created just before the kill?
        if found:
            batch.batch_id, batch.status = found.id, found.status
            self.store.update(batch)
        elif batch.input_file_id:
            self._create(api, batch)
        else:  # killed before its upload was saved: never submitted, its keys go into new batches
            batch.status, batch.collected = "never submitted", True
            self.store.update(batch)
            return False
        return True

    def _create(self, api, batch: SavedBatch) -> None:
        try:
            created = api.batches.create(
                input_file_id=batch.input_file_id,
                endpoint=CHAT_URL,
                completion_window="24h",
                metadata={"glan_chunk": batch.chunk_id},
            )
        except openai.APIError as error:
            raise refused(batch, "batch creation", error) from error
        batch.batch_id, batch.status = created.id, created.status
        self.store.update(batch)

    def _api(self, batch: SavedBatch) -> openai.OpenAI:
        # The endpoint the batch was submitted to, not today's --base-url: only it knows the batch.
        return client(batch.base_url, batch.api_key_env, self.limits.max_retries, self.limits.timeout_s)

    def _wait(self, batches: list[SavedBatch]) -> None:
        waiting = list(batches)
        delay = min(FIRST_POLL_S, self.poll_s)
        while waiting:
            for batch in list(waiting):
                api = self._api(batch)
                try:
                    remote = api.batches.retrieve(_created(batch))
                except openai.APIError as error:
                    raise refused(batch, f"status of batch {batch.batch_id}", error) from error
                batch.status, batch.counts = remote.status, counts(remote)
                self.store.update(batch)
                if remote.status in TERMINAL:
                    self._collect(api, batch, remote)
                    waiting.remove(batch)
            if waiting:
                time.sleep(delay)
                delay = min(delay * 2, self.poll_s)

    def _collect(self, api, batch: SavedBatch, remote) -> None:
        """Writes every answered line into the cache; records why the others were not answered."""
        usage = self.accounting.usage(batch.stage, batch.model)
        api_key = os.environ.get(batch.api_key_env)  # taken out of every text the endpoint sends
        expected, answered, unkept = set(batch.keys), 0, {}
        for line in _lines(api, batch, remote.output_file_id):
            response = line.get("response")
            if (
                line.get("custom_id") not in expected
                or not isinstance(response, dict)
                or response.get("status_code") != 200
            ):
                continue
            try:  # an answer is untrusted as an online reply is: one glan cannot keep is the request's failure
                answer = read_completion(response.get("body"), api_key)
            except ValueError as error:
                unkept[line["custom_id"]] = f"bad_response: {error}"
                continue
            self.cache.put(line["custom_id"], batch.stage, batch.model, answer)
            usage.prompt_tokens += answer.prompt_tokens
            usage.cached_tokens += answer.cached_tokens
            usage.completion_tokens += answer.completion_tokens
            usage.cost += self.accounting.cost(
                batch.model, answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens, batch=True
            )
            expected.discard(line["custom_id"])
            self.unanswered.pop(line["custom_id"], None)
            answered += 1
        reasons = {
            line.get("custom_id"): redact(_line_error(line), api_key)
            for line in _lines(api, batch, remote.error_file_id)
        }
        reasons.update(unkept)
        missing = f"batch_{remote.status}" if remote.status in ("expired", "cancelled") else "server_error"
        for key in expected:
            self.unanswered[key] = reasons.get(key) or f"{missing}: batch {batch.batch_id} returned no line for it"
        batch.collected = True
        self.store.update(batch)
        errors = (remote.errors.data if remote.errors else None) or []
        problems = redact("; ".join(str(error.message) for error in errors), api_key)
        if remote.status == "failed":  # the input was refused as a whole: resending it would fail alike
            raise BatchError(
                f"{batch.base_url}: batch {batch.batch_id} of stage {batch.stage} failed: "
                f"{problems or 'no reason given'}. Fix what it names and rerun; the cache keeps "
                "every answer so far."
            )
        seen = sorted({reason for key, reason in self.unanswered.items() if key in set(batch.keys)})
        why = f" (unanswered: {'; '.join(seen[:3])})" if seen else ""
        self._say(
            f"{batch.stage}: batch {batch.batch_id} {remote.status}: {answered:,} of {len(batch.keys):,} answered{why}"
        )

    def _say(self, message: str) -> None:
        # Always, not only on a terminal: batch ids in a days-long run's log are what a person checks.
        log.info(f"glan: {message}")


def _created(batch: SavedBatch) -> str:
    """The id of a batch that was created (whose batch_id is saved)."""
    if batch.batch_id is None:
        raise ValueError(f"chunk {batch.chunk_id} has no batch yet")
    return batch.batch_id


def counts(remote) -> dict | None:
    """A batch's request counts as the API gave them (None when it gave none)."""
    return remote.request_counts.model_dump() if remote.request_counts is not None else None


def _line_error(line: dict) -> str:
    """'<code>: <message>' of an error file line: a whole-line error, or the response's own error body."""
    try:
        error = line.get("error") or ((line.get("response") or {}).get("body") or {}).get("error") or {}
        status = (line.get("response") or {}).get("status_code")
        code = error.get("code") or error.get("type") or (f"http_{status}" if status else "unknown")
        if status == 429 or (status or 0) >= 500:
            code = "server_error" if status != 429 else "rate_limit_exceeded"
        return f"{code}: {error.get('message') or 'no message'}"
    except (AttributeError, TypeError):  # the endpoint's line is not shaped as the Batch API's
        return "unknown: an error line glan cannot read"


def find_by_chunk(api, batch: SavedBatch):
    try:
        for remote in api.batches.list(limit=100):  # newest first; pages on by itself
            if (remote.metadata or {}).get("glan_chunk") == batch.chunk_id:
                return remote
            if remote.created_at < batch.created - 3600:  # older than our chunk: it was never created
                return None
    except openai.APIError as error:
        raise refused(batch, "batch listing", error) from error
    return None


def _lines(api, batch: SavedBatch, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    try:
        text = api.files.content(file_id).text
    except openai.APIError as error:
        raise refused(batch, f"download of {file_id}", error) from error
    return [line for line in map(_json_or_none, text.splitlines()) if isinstance(line, dict)]


def _json_or_none(text: str):
    """A line of a batch file, decoded; None when it is not JSON (the endpoint's fault: its request is unanswered)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
