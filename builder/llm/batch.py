"""OpenAI Batch API mode: a stage's uncached requests answered by batches at half the price, resumably.

Before the engine runs a batch stage, every request whose next attempt is missing from the cache
becomes one JSONL line (custom_id = its cache key, body = exactly what the engine would post),
chunked within the API's limits, uploaded and submitted. Results are written into the cache under
the same keys, so the engine's normal run then replays them and sends online only what the
batches left unanswered (per-request errors, expired or cancelled batches); with the stage's
`batch_fallback: batch` those go through new batches first.

Resuming across processes and days: each chunk is saved in the work dir's SQLite db before its
upload, its input file id before the batch is created, and its batch id right after. The batch
carries the chunk id in its metadata, so a batch created just before a kill (before its id was
saved) is found again by listing batches. A later run polls saved batches instead of resubmitting.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from dataclasses import dataclass

import openai

from .cache import Cache, Response
from .engine import Attempts

# The Batch API's input file limits.
MAX_FILE_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1000 * 1000
CHAT_URL = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")
FIRST_POLL_S = 0.5  # doubled on every poll up to the configured interval: small batches finish fast

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    chunk_id TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, base_url TEXT NOT NULL,
    api_key_env TEXT NOT NULL, keys TEXT NOT NULL, input_file_id TEXT, batch_id TEXT,
    status TEXT NOT NULL, counts TEXT, collected INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
"""


class BatchError(RuntimeError):
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
        self.db.execute("INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            batch.chunk_id, batch.stage, batch.model, batch.base_url, batch.api_key_env, json.dumps(batch.keys),
            batch.input_file_id, batch.batch_id, batch.status, None, 0, batch.created))

    def update(self, batch: SavedBatch) -> None:
        self.db.execute(
            "UPDATE batches SET input_file_id=?, batch_id=?, status=?, counts=?, collected=? WHERE chunk_id=?",
            (batch.input_file_id, batch.batch_id, batch.status, json.dumps(batch.counts), int(batch.collected),
             batch.chunk_id))

    def all(self, stage: str | None = None) -> list[SavedBatch]:
        rows = self.db.execute("SELECT * FROM batches WHERE ?1 IS NULL OR stage=?1 ORDER BY created", (stage,))
        return [SavedBatch(*row[:5], json.loads(row[5]), row[6], row[7], row[8],
                           json.loads(row[9]) if row[9] else None, bool(row[10]), row[11]) for row in rows]


def client(base_url: str, api_key_env: str, max_retries: int = 2, timeout_s: float = 60) -> openai.OpenAI:
    # Local servers take no key; OpenAI answers a missing one with a 401 that names the problem.
    return openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "no-key-set",
                         max_retries=max_retries, timeout=timeout_s)


def refused(base_url: str, action: str, error: openai.APIError) -> BatchError:
    return BatchError(
        f"{base_url}: Batch API {action} failed: {error}. Check the endpoint supports the OpenAI Files and "
        "Batch APIs and the key in its api_key_env, or build without --batch (and `batch: false` per stage).")


class BatchRunner:
    def __init__(self, engine, poll_s: float):
        self.engine = engine
        self.cache, self.limits, self.accounting = engine.cache, engine.limits, engine.accounting
        self.store = BatchStore(engine.cache)
        self.poll_s = poll_s

    def fill(self, stage: str, route, requests: list, fallback: str) -> None:
        """Answer through batches every request whose next attempt is not cached, waiting for them."""
        if self.engine.stop_reason or self.accounting.budget_exhausted():
            return  # a stopped run (or `glan estimate`) sends nothing: the engine's run records the skips
        endpoint = route.endpoints[0]  # one Batch API: a batch cannot be spread over endpoints
        api = client(endpoint.base_url, endpoint.api_key_env, self.limits.max_retries, self.limits.timeout_s)
        tries: dict[str, int] = {}
        # online: one round, then the engine sends the rest; batch: new rounds for errors and retries.
        max_tries = self.limits.max_retries + 1 if fallback == "batch" else 1
        for round_index in range(self.limits.max_attempts * max_tries):
            pending = self._pending(route.model, requests, endpoint)
            saved = self._resume(api, [batch for batch in self.store.all(stage)
                                       if not batch.collected and set(batch.keys) & pending.keys()])
            covered = {key for batch in saved for key in batch.keys}
            new = [line for key, line in pending.items() if key not in covered and tries.get(key, 0) < max_tries]
            if fallback == "online" and round_index > 0:
                new = []
            for line in new:
                tries[line["custom_id"]] = tries.get(line["custom_id"], 0) + 1
            saved += self._submit(api, stage, route.model, endpoint, new)
            if not saved:
                return
            self._wait(api, saved)

    def _resume(self, api, saved: list[SavedBatch]) -> list[SavedBatch]:
        """Saved batches that exist on the server; ones a kill interrupted are found or created now."""
        existing = []
        for batch in saved:
            if batch.batch_id is None:
                found = _find_by_chunk(api, batch)  # created just before the kill?
                if found:
                    batch.batch_id, batch.status = found.id, found.status
                    self.store.update(batch)
                elif batch.input_file_id:
                    self._create(api, batch)
                else:  # killed before its upload was saved: never submitted, its keys are still pending
                    batch.status, batch.collected = "never submitted", True
                    self.store.update(batch)
                    continue
            existing.append(batch)
        return existing

    def _pending(self, model: str, requests: list, endpoint) -> dict[str, dict]:
        """key -> batch line of each request's next uncached attempt, walked as the engine walks it."""
        mode = self.engine.mode(endpoint)
        lines = {}
        for request in requests:
            attempts = Attempts(model, request, self.limits.max_attempts)
            attempts.replay(self.cache)
            if not attempts.done:
                body = self.engine.request_body(model, request, attempts.params, attempts.key, mode)
                lines[attempts.key] = {"custom_id": attempts.key, "method": "POST", "url": CHAT_URL, "body": body}
        return lines

    def _submit(self, api, stage: str, model: str, endpoint, lines: list[dict]) -> list[SavedBatch]:
        usage = self.accounting.usage(stage, model)
        if self.accounting.budget.max_requests is not None:
            lines = lines[: max(0, self.accounting.budget.max_requests - self.accounting.total().requests)]
        submitted = []
        for keys, data in _chunks(lines):
            batch = SavedBatch(secrets.token_hex(8), stage, model, endpoint.base_url, endpoint.api_key_env, keys,
                               None, None, "preparing", None, False, time.time())
            self.store.add(batch)
            try:
                batch.input_file_id = api.files.create(file=(f"glan-{batch.chunk_id}.jsonl", data), purpose="batch").id
            except openai.APIError as error:
                raise refused(batch.base_url, "file upload", error) from error
            self.store.update(batch)
            self._create(api, batch)
            usage.requests += len(keys)
            submitted.append(batch)
            self._say(f"{stage}: submitted batch {batch.batch_id} ({len(keys):,} requests)")
        return submitted

    def _create(self, api, batch: SavedBatch) -> None:
        try:
            created = api.batches.create(input_file_id=batch.input_file_id, endpoint=CHAT_URL,
                                         completion_window="24h", metadata={"glan_chunk": batch.chunk_id})
        except openai.APIError as error:
            raise refused(batch.base_url, "batch creation", error) from error
        batch.batch_id, batch.status = created.id, created.status
        self.store.update(batch)

    def _wait(self, api, batches: list[SavedBatch]) -> None:
        waiting = list(batches)
        delay = min(FIRST_POLL_S, self.poll_s)
        while waiting:
            for batch in list(waiting):
                try:
                    remote = api.batches.retrieve(batch.batch_id)
                except openai.APIError as error:
                    raise refused(batch.base_url, f"status of batch {batch.batch_id}", error) from error
                batch.status, batch.counts = remote.status, remote.request_counts.model_dump()
                self.store.update(batch)
                if remote.status in TERMINAL:
                    self._collect(api, batch, remote)
                    waiting.remove(batch)
            if waiting:
                time.sleep(delay)
                delay = min(delay * 2, self.poll_s)

    def _collect(self, api, batch: SavedBatch, remote) -> None:
        """Writes every answered line into the cache; the rest stays pending for the fallback."""
        usage = self.accounting.usage(batch.stage, batch.model)
        expected, answered = set(batch.keys), 0
        for line in _lines(api, batch, remote.output_file_id):
            response = line.get("response") or {}
            if line.get("custom_id") not in expected or response.get("status_code") != 200:
                continue
            body = response["body"]
            choice, tokens = body["choices"][0], body.get("usage") or {}
            answer = Response(choice["message"].get("content") or "", choice.get("finish_reason"),
                              tokens.get("prompt_tokens", 0), tokens.get("completion_tokens", 0))
            self.cache.put(line["custom_id"], batch.stage, batch.model, answer)
            usage.prompt_tokens += answer.prompt_tokens
            usage.completion_tokens += answer.completion_tokens
            usage.cost += self.accounting.cost(batch.model, answer.prompt_tokens, answer.completion_tokens, batch=True)
            answered += 1
        batch.collected = True
        self.store.update(batch)
        problems = "; ".join(str(error.message) for error in (remote.errors.data if remote.errors else None) or [])
        if remote.status == "failed":  # the input was refused as a whole: resending it would fail alike
            raise BatchError(f"{batch.base_url}: batch {batch.batch_id} of stage {batch.stage} failed: "
                             f"{problems or 'no reason given'}. Fix what it names and rerun; the cache keeps "
                             "every answer so far.")
        self._say(f"{batch.stage}: batch {batch.batch_id} {remote.status}: {answered:,} of {len(batch.keys):,} "
                  f"answered")

    def _say(self, message: str) -> None:
        # Always, not only on a terminal: batch ids in a days-long run's log are what a person checks.
        print(f"glan: {message}", file=sys.stderr)


def _chunks(lines: list[dict]):
    """(custom ids, JSONL bytes) of input files within the Batch API's per-file limits."""
    keys, encoded, size = [], [], 0
    for line in lines:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        if keys and (len(keys) == MAX_FILE_REQUESTS or size + len(data) > MAX_FILE_BYTES):
            yield keys, b"".join(encoded)
            keys, encoded, size = [], [], 0
        keys.append(line["custom_id"])
        encoded.append(data)
        size += len(data)
    if keys:
        yield keys, b"".join(encoded)


def _find_by_chunk(api, batch: SavedBatch):
    try:
        for remote in api.batches.list(limit=100):  # newest first; pages on by itself
            if (remote.metadata or {}).get("glan_chunk") == batch.chunk_id:
                return remote
            if remote.created_at < batch.created - 3600:  # older than our chunk: it was never created
                return None
    except openai.APIError as error:
        raise refused(batch.base_url, "batch listing", error) from error
    return None


def _lines(api, batch: SavedBatch, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    try:
        text = api.files.content(file_id).text
    except openai.APIError as error:
        raise refused(batch.base_url, f"download of {file_id}", error) from error
    return [json.loads(line) for line in text.splitlines() if line.strip()]
