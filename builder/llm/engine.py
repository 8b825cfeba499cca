"""The engine: turns a stage's requests into parsed outputs, through the cache, within the limits.

A stage hands over all its requests at once and gets one LLMResult per request back, in order.
For each request, attempts 0, 1, ... are looked up in the cache and only missing ones are sent; an
output that fails validation makes the next attempt, a new key, so a rerun replays the same attempts.
Transport errors are retried inside one attempt (they produce no output to cache).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from tqdm import tqdm

from .accounting import Accounting
from .cache import Cache, Failure, Response, cache_key
from .limits import AdaptiveConcurrency, RateLimiter, backoff_s
from .structured import parse_output, request_fields, schema_instruction
from .transport import TransportError, open_session, post_chat

# Built once per output model (and mode): pydantic's schema generation costs more than a request's I/O.
_schema_of = functools.cache(lambda output_model: output_model.model_json_schema())
_request_fields = functools.cache(request_fields)
_schema_instruction = functools.cache(schema_instruction)

# The endpoint refuses every request alike (bad key, no access, wrong URL or model): stop, don't retry.
_FATAL_STATUS = {401: "check the API key in ${env}", 403: "check that the key in ${env} may use this model",
                 404: "check the base URL and the model name"}


class EndpointError(RuntimeError):
    """An endpoint refused the run as a whole; the message is the endpoint's own plus what to check."""


class _BudgetSpent(Exception):
    pass


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the variable: keys never enter settings or the cache
    mode: str = "auto"


@dataclass(frozen=True)
class Route:
    """Where one stage's requests go: a model served by one or more endpoints (spread round-robin)."""

    model: str
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class Limits:
    concurrency: int = 64  # per endpoint
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout_s: float = 120
    max_retries: int = 6  # transport retries within one attempt
    max_attempts: int = 3  # outputs that fail validation


@dataclass
class LLMRequest:
    item_id: str
    messages: list[dict]
    params: dict
    output_model: type[BaseModel] | None
    sample_index: int = 0


@dataclass
class LLMResult:
    request: LLMRequest
    value: Any = None
    failure: str | None = None
    skipped: bool = False
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.skipped


class Attempts:
    """Where one request stands: attempt k is cache key k; an invalid output moves on to attempt k+1, and
    one cut off at the token limit doubles max_tokens once (the same limit would likely cut it again).

    The engine and the Batch API runner both walk requests with it, so they agree on every key.
    """

    def __init__(self, model: str, request: LLMRequest, max_attempts: int):
        self.model, self.request, self.max_attempts = model, request, max_attempts
        self.params = dict(request.params)
        self.attempt, self.widened = 0, False
        self.ok, self.value = False, None
        self.reason, self.last_text = None, ""  # of the last invalid output
        self.key = self._key()

    @property
    def done(self) -> bool:
        return self.ok or self.attempt >= self.max_attempts

    def replay(self, cache: Cache) -> int:
        """Advance through the attempts the cache already answered; returns how many it did."""
        hits = 0
        while not self.done and (response := cache.get(self.key)) is not None:
            self.advance(response)
            hits += 1
        return hits

    def advance(self, response: Response) -> None:
        value, reason = parse_output(response.text, self.request.output_model)
        if response.finish_reason == "length":
            value, reason = None, "truncated"
        if reason is None:
            self.ok, self.value = True, value
            return
        self.reason, self.last_text = reason, response.text
        if reason == "truncated" and not self.widened and self.params.get("max_tokens"):
            self.params["max_tokens"] *= 2
            self.widened = True
        self.attempt += 1
        if not self.done:
            self.key = self._key()

    def _key(self) -> str:
        output_model = self.request.output_model
        return cache_key(model=self.model, messages=self.request.messages, params=self.params,
                         schema=_schema_of(output_model) if output_model else None,
                         sample_index=self.request.sample_index, attempt=self.attempt)


@dataclass
class _EndpointState:
    endpoint: Endpoint
    api_key: str | None
    mode: str
    concurrency: AdaptiveConcurrency
    requests: RateLimiter | None
    tokens: RateLimiter | None
    session: Any = None
    paused_until: float = 0.0


# auto tries the OpenAI standard first and falls back when the endpoint rejects it.
_FALLBACK = {"json_schema": "json_object", "json_object": "prompt"}


def _rejects_schema(error: TransportError) -> bool:
    # llama-cpp-python's server answers a json_schema response_format with a 500 and a validation error.
    text = error.message.lower()
    return error.status in (400, 422, 500) and any(word in text for word in ("response_format", "json_schema", "grammar"))


class Engine:
    def __init__(self, cache: Cache, limits: Limits, accounting: Accounting, progress: bool = True):
        self.cache = cache
        self.limits = limits
        self.accounting = accounting
        self.progress = progress
        self.stop_reason: str | None = None
        # Evidence that overload slowed the client, for the run report: per endpoint URL.
        self.lowest_concurrency: dict[str, int] = {}
        self.retry_after_waits: list[float] = []

    def run(self, stage: str, route: Route, requests: list[LLMRequest]) -> list[LLMResult]:
        if self.stop_reason is None:  # a stopped run (or an estimate) keeps the last run's record of this stage
            self.cache.clear_failures(stage)
        return asyncio.run(self._run(stage, route, requests))

    async def _run(self, stage: str, route: Route, requests: list[LLMRequest]) -> list[LLMResult]:
        states = [self._state(endpoint) for endpoint in route.endpoints]
        for state in states:
            state.session = open_session(self.limits.timeout_s)
        rotation = itertools.cycle(states)
        results: list[LLMResult | None] = [None] * len(requests)
        pending = iter(enumerate(requests))
        usage = self.accounting.usage(stage, route.model)
        bar = tqdm(total=len(requests), desc=stage, unit="req", disable=not self.progress or None, file=sys.stderr)

        async def worker():
            for index, request in pending:
                result = await self._complete(stage, route, rotation, request)
                results[index] = result
                usage.succeeded += result.ok
                usage.failed += result.failure is not None
                usage.skipped += result.skipped
                bar.update()
                if bar.n % 50 == 0 or bar.n == bar.total:
                    bar.set_postfix(hits=usage.cache_hits, failed=usage.failed, cost=f"${usage.cost:.4f}", refresh=False)

        try:
            workers = max(1, min(len(requests), self.limits.concurrency * len(states)))
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            bar.close()
            for state in states:
                await state.session.close()
                self.lowest_concurrency[state.endpoint.base_url] = min(
                    state.concurrency.lowest, self.lowest_concurrency.get(state.endpoint.base_url, state.concurrency.lowest))
        return results

    def mode(self, endpoint: Endpoint) -> str:
        """The structured-output mode to send to `endpoint`: its own, or for auto what it accepted last time."""
        if endpoint.mode != "auto":
            return endpoint.mode
        return self.cache.mode(endpoint.base_url) or "json_schema"

    def _state(self, endpoint: Endpoint) -> _EndpointState:
        rpm, tpm = self.limits.requests_per_minute, self.limits.tokens_per_minute
        return _EndpointState(
            endpoint, os.environ.get(endpoint.api_key_env), self.mode(endpoint), AdaptiveConcurrency(self.limits.concurrency),
            RateLimiter(rpm) if rpm else None, RateLimiter(tpm) if tpm else None)

    async def _complete(self, stage: str, route: Route, rotation, request: LLMRequest) -> LLMResult:
        usage = self.accounting.usage(stage, route.model)
        attempts = Attempts(route.model, request, self.limits.max_attempts)
        while True:
            usage.cache_hits += attempts.replay(self.cache)
            if attempts.ok:
                return LLMResult(request, value=attempts.value, attempts=attempts.attempt + 1)
            if attempts.done:
                return self._fail(stage, request, attempts.reason, attempts.attempt, attempts.last_text)
            try:
                response = await self._send(stage, route, rotation, request, attempts.params, attempts.key)
            except _BudgetSpent:
                return LLMResult(request, skipped=True, attempts=attempts.attempt)
            except TransportError as error:
                return self._fail(stage, request, str(error), attempts.attempt + 1, "")
            attempts.advance(response)

    def _fail(self, stage: str, request: LLMRequest, reason: str, attempts: int, last_text: str) -> LLMResult:
        self.cache.record_failure(Failure(stage, request.item_id, reason, attempts, last_text))
        return LLMResult(request, failure=reason, attempts=attempts)

    def request_body(self, model: str, request: LLMRequest, params: dict, key: str, mode: str) -> dict:
        """The chat-completions body of one attempt in a structured-output mode; Batch API lines use it too."""
        messages = request.messages
        body = {"model": model, **params, "seed": int(key[:8], 16) % 2**31}
        if request.output_model is not None:
            if mode == "prompt":
                system, *rest = messages
                messages = [{**system, "content": system["content"] + "\n\n" + _schema_instruction(request.output_model)}, *rest]
            body.update(_request_fields(mode, request.output_model))
        body["messages"] = messages
        return body

    async def _send(self, stage: str, route: Route, rotation, request: LLMRequest, params: dict, key: str) -> Response:
        usage = self.accounting.usage(stage, route.model)
        retries = 0
        while True:
            state = next(rotation)
            wait = state.paused_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if state.requests:
                await state.requests.take(1)
            if state.tokens:
                await state.tokens.take(sum(len(m["content"]) for m in request.messages) / 4 + params.get("max_tokens", 0))
            if self.stop_reason:
                raise _BudgetSpent
            await state.concurrency.acquire()
            overloaded, delay = False, 0.0
            try:
                # Checked and counted with no await in between, so --max-requests N sends exactly N.
                self.stop_reason = self.accounting.budget_exhausted()
                if self.stop_reason:
                    raise _BudgetSpent
                usage.requests += 1
                mode = state.mode
                body = self.request_body(route.model, request, params, key, mode)
                response = await post_chat(state.session, state.endpoint.base_url, state.api_key, body)
                # Committed before anything else happens with it: after a SIGKILL it is never paid again.
                self.cache.put(key, stage, route.model, response)
                usage.prompt_tokens += response.prompt_tokens
                usage.completion_tokens += response.completion_tokens
                usage.cost += self.accounting.cost(route.model, response.prompt_tokens, response.completion_tokens)
                return response
            except TransportError as error:
                if state.api_key:  # some endpoints echo the key back in their error message
                    error.message = error.message.replace(state.api_key, "***")
                overloaded = error.status == 429
                if (request.output_model is not None and state.endpoint.mode == "auto"
                        and mode in _FALLBACK and _rejects_schema(error)):
                    if state.mode == mode:  # requests in flight with the old mode fail too: step down once
                        state.mode = _FALLBACK[mode]
                        self.cache.remember_mode(state.endpoint.base_url, state.mode)
                    continue
                if error.status in _FATAL_STATUS:
                    advice = _FATAL_STATUS[error.status].replace("${env}", "$" + state.endpoint.api_key_env)
                    raise EndpointError(f"{state.endpoint.base_url}: HTTP {error.status}: {error.message} "
                                        f"(model {route.model}); {advice}.") from None
                if not error.retryable or retries >= self.limits.max_retries:
                    raise
                retries += 1
                delay = error.retry_after_s if error.retry_after_s is not None else backoff_s(retries)
                if error.retry_after_s is not None:
                    state.paused_until = max(state.paused_until, time.monotonic() + delay)
                    self.retry_after_waits.append(delay)
            finally:
                await state.concurrency.release(overloaded)
            await asyncio.sleep(delay)
