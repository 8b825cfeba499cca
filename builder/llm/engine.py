"""The engine: one per build, shared by every discipline unit in flight.

A unit hands a stage's requests over as an iterable; the engine pulls the next one (rendering it) only
when a slot in the stage's window frees up, walks its attempts through the cache (only missing attempts
are sent), and gives one LLMResult per request, in order, as they complete (a unit spills them as rows).
Each endpoint's limits (concurrency with AIMD, requests and tokens per minute, Retry-After pauses) are shared
by all units, so an endpoint stays full without run-wide stage barriers. Transport errors are retried inside
one attempt (they produce no output to cache); an output that fails validation is the next attempt. An endpoint
that answers nothing for `dead_after_s` (refused connections, timeouts) stops the build, as a spent budget does:
what was received is cached and the same command resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..config.settings import Limits
from ..errors import UserError
from .accounting import Accounting
from .attempts import Attempts, LLMRequest, LLMResult, schema_of
from .cache import Cache, Response
from .limits import AdaptiveConcurrency, RateLimiter, backoff_s
from .prompt_cache import PromptCacheModel
from .reply import reply_limit
from .routes import Endpoint, Route
from .structured import request_fields, schema_instruction
from .transport import ChatEndpoint, TransportError, encode_body

_request_fields = functools.cache(request_fields)
_schema_instruction = functools.cache(schema_instruction)

# The endpoint refuses every request alike (bad key, no access, wrong URL or model): stop, don't retry.
_FATAL_STATUS = {
    401: "check the API key in ${env}",
    403: "check that the key in ${env} may use this model",
    404: "check the base URL and the model name",
}


# How far past the oldest result not yet given a stage's requests may run, in windows (Engine.stream).
AHEAD = 4


class EndpointError(UserError):
    """An endpoint refused the run as a whole; the message is the endpoint's own plus what to check."""


class _Stopped(Exception):
    """The build stops (a budget is spent, an endpoint is dead): the request is not sent."""


@dataclass
class _EndpointState:
    endpoint: Endpoint
    api_key: str | None
    mode: str
    concurrency: AdaptiveConcurrency
    requests: RateLimiter | None
    tokens: RateLimiter | None
    client: ChatEndpoint
    answered_at: float  # when the endpoint last answered (any HTTP status), or when this build first used it
    paused_until: float = 0.0
    failing_since: float | None = None  # tries have gone unanswered since (None: the last one was answered)

    def answered(self) -> None:
        self.answered_at, self.failing_since = time.monotonic(), None


EndpointLimiters = tuple[AdaptiveConcurrency, RateLimiter | None, RateLimiter | None]  # concurrency, requests, tokens


def local_limits(endpoint: Endpoint, limits: Limits) -> EndpointLimiters:
    """One process's own limits on an endpoint: its concurrency, requests and tokens per minute. (On Ray, each
    worker's come from leases on the endpoint's cluster-wide limits instead: builder/execute/ray/leases.py.)"""
    rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
    return AdaptiveConcurrency(limits.concurrency), RateLimiter(rpm) if rpm else None, RateLimiter(tpm) if tpm else None


# auto tries the OpenAI standard first and falls back when the endpoint rejects it.
_FALLBACK = {"json_schema": "json_object", "json_object": "prompt"}


def _rejects_schema(error: TransportError) -> bool:
    # llama-cpp-python's server answers a json_schema response_format with a 500 and a validation error.
    text = error.message.lower()
    return error.status in (400, 422, 500) and any(
        word in text for word in ("response_format", "json_schema", "grammar")
    )


class Engine:
    """Use inside `async with engine:` (it owns one HTTP session per endpoint). `cache` is the work dir's shared
    cache: the structured-output mode each endpoint accepted, and the Batch API's answers.

    `offline` (glan estimate) sends nothing: a request missing from the cache comes back skipped.
    `batches`, when set, takes the requests of Batch API stages instead of sending them online.
    `endpoint_limits(endpoint, limits)` makes each endpoint's (concurrency, requests, tokens) limiters.
    """

    def __init__(
        self,
        cache: Cache,
        limits: Limits,
        accounting: Accounting,
        *,
        offline: bool = False,
        batches=None,
        endpoint_limits: Callable[[Endpoint, Limits], EndpointLimiters] = local_limits,
    ):
        self.cache = cache
        self.limits = limits
        self.endpoint_limits = endpoint_limits
        self.accounting = accounting
        self.offline = offline
        self.prompt_cache = PromptCacheModel()  # offline: what the endpoint would serve from its prompt cache
        self.batches = batches
        self.stop_reason: str | None = None
        self._stopping = asyncio.Event()  # set when an endpoint is found dead: waiting requests give up at once
        self.refused: EndpointError | None = None
        self._states: dict[Endpoint, _EndpointState] = {}
        self._rotations: dict[Route, Iterator[_EndpointState]] = {}
        self.queued = 0  # the requests the units' stages keep in flight (their workers): the demand on the endpoints
        self.hungry = asyncio.Event()  # set when the demand drops below what the endpoints take, or a unit ends
        # Evidence that overload slowed the client, for the run report: per endpoint URL.
        self.retry_after_waits: list[float] = []

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info) -> None:
        for state in self._states.values():
            await state.client.close()

    @property
    def lowest_concurrency(self) -> dict[str, int]:
        return {state.endpoint.base_url: state.concurrency.lowest for state in self._states.values()}

    @property
    def capacity(self) -> int:
        return sum(int(state.concurrency.limit) for state in self._states.values()) or self.limits.concurrency

    @property
    def wants_work(self) -> bool:
        """Fewer requests are queued than the endpoints take at once."""
        return self.queued < self.capacity

    async def map(
        self,
        stage: str,
        route: Route,
        requests: Iterable[LLMRequest],
        cache: Cache,
        *,
        count: int | None = None,
        batch: bool = False,
    ) -> list[LLMResult]:
        """One result per request, in order (`stream`, gathered)."""
        results: list[LLMResult] = []
        await self.stream(stage, route, requests, cache, results.append, count=count, batch=batch)
        return results

    async def stream(
        self,
        stage: str,
        route: Route,
        requests: Iterable[LLMRequest],
        cache: Cache,
        on_result: Callable[[LLMResult], None],
        *,
        count: int | None = None,
        batch: bool = False,
    ) -> None:
        """Gives `on_result` one result per request, in request order, as they complete, through `cache` (a unit's
        own); `count` is how many `requests` holds, when it is a generator. At most a window's worth of requests
        exists at a time: the next one is taken from `requests` (and so rendered) only when an earlier one is done,
        and no more than AHEAD windows past the oldest result not yet given, so the results a slow request holds
        back stay few."""
        if count is None:
            requests = list(requests)
            count = len(requests)
        pending = enumerate(requests)
        done: dict[int, LLMResult] = {}  # results not yet given: a later request finished before an earlier one
        given = 0
        progressed = asyncio.Event()
        failed = False  # a worker raised: the others send no request more, and none waits for a result to come
        # One worker per request the stage keeps in flight, counted as demand at once, before any is sent:
        # whoever judges the demand next (builder/execute/admission.py) sees this stage's.
        width = min(count, self.limits.concurrency * len(route.endpoints))
        self.queued += width

        async def parked() -> None:
            """Waits for the oldest result to be given. A parked worker is no demand meanwhile: other units may start
            their requests (one slow request would otherwise hold the endpoint's slots idle)."""
            self.queued -= 1
            if self.wants_work:
                self.hungry.set()
            try:
                progressed.clear()
                await progressed.wait()
            finally:
                self.queued += 1

        async def worker() -> None:
            nonlocal given, failed
            try:
                for index, request in pending:  # taken, and so rendered, only when this worker is free
                    while index >= given + AHEAD * width and not failed:  # the oldest is in flight with another
                        await parked()
                    if failed:  # those in flight finish (into the cache); the error stops the stage below
                        return
                    done[index] = await self.complete(stage, route, request, cache, batch=batch)
                    while given in done:
                        on_result(done.pop(given))
                        given += 1
                    progressed.set()
            except BaseException:
                # The oldest result will never be given: wake the workers waiting for it (they waited forever).
                failed = True
                progressed.set()
                raise
            finally:
                self.queued -= 1  # the stage has fewer requests left than workers
                if self.wants_work:
                    self.hungry.set()

        workers = [asyncio.ensure_future(worker()) for _ in range(width)]
        try:
            if workers:
                await asyncio.wait(workers)
            for task in workers:
                task.result()  # an endpoint that refused the run stops the stage here
        finally:
            for task in workers:
                task.cancel()

    async def complete(
        self, stage: str, route: Route, request: LLMRequest, cache: Cache, *, batch: bool = False
    ) -> LLMResult:
        usage = self.accounting.usage(stage, route.model)
        attempts = Attempts(route.model, request, self.limits.max_attempts)
        while True:
            usage.cache_hits += attempts.replay(cache)
            if attempts.done:
                return self._counted(usage, attempts.result())
            if self.offline or self.stop_reason:
                if self.offline:
                    usage.prompt_chars += sum(len(message["content"]) for message in request.messages)
                    usage.cached_chars += self.prompt_cache.cached_chars(stage, route.endpoints[0], request)
                return self._counted(usage, LLMResult(skipped=True, attempts=attempts.attempt))
            if batch and self.batches is not None:
                taken = self.batches.take(stage, route, attempts)
                if taken is not None:  # None: the batches left it to be sent online
                    return taken if taken.batched else self._counted(usage, taken)
            try:
                response = await self._send(stage, route, request, attempts.params, attempts.key, cache)
            except _Stopped:
                return self._counted(usage, LLMResult(skipped=True, attempts=attempts.attempt))
            except TransportError as error:
                return self._counted(
                    usage, LLMResult(failure=str(error), transient=True, attempts=attempts.attempt + 1)
                )
            # The slot this request held was handed to a waiting request, already rendered: let it be sent before
            # this response is parsed and the next request rendered. Answers come back in waves as requests went
            # out; sending first keeps the endpoint full while the wave is processed. Meanwhile the cache commits
            # the response (Cache.put).
            await asyncio.sleep(0)
            attempts.advance(response)

    @staticmethod
    def _counted(usage, result: LLMResult) -> LLMResult:
        usage.succeeded += result.ok
        usage.failed += result.failure is not None
        usage.skipped += result.skipped
        return result

    def mode(self, endpoint: Endpoint) -> str:
        """The structured-output mode to send to `endpoint`: its own, or for auto what it accepted last time."""
        if endpoint.mode != "auto":
            return endpoint.mode
        return self.cache.mode(endpoint.base_url) or "json_schema"

    def request_body(
        self, model: str, request: LLMRequest, params: dict, key: str, endpoint: Endpoint, mode: str
    ) -> dict:
        """The chat-completions body of one attempt to `endpoint` in a structured-output mode (free text: as it is);
        Batch API lines use it too. OpenAI alone gets the prompt_cache_key: vLLM and llama.cpp cache prefixes
        without one, and a strict server refuses a parameter it does not know."""
        messages = request.messages
        body = {"model": model, **params, "seed": int(key[:8], 16) % 2**31}
        if request.prompt_cache_key is not None and endpoint.is_openai:
            body["prompt_cache_key"] = request.prompt_cache_key
        if schema_of(request.output_model) is not None:
            if mode == "prompt":
                system, *rest = messages
                messages = [
                    {**system, "content": system["content"] + "\n\n" + _schema_instruction(request.output_model)},
                    *rest,
                ]
            body.update(_request_fields(mode, request.output_model))
        body["messages"] = messages
        return body

    def _state(self, endpoint: Endpoint) -> _EndpointState:
        if endpoint not in self._states:
            api_key = os.environ.get(endpoint.api_key_env)
            self._states[endpoint] = _EndpointState(
                endpoint,
                api_key,
                self.mode(endpoint),
                *self.endpoint_limits(endpoint, self.limits),
                ChatEndpoint(endpoint.base_url, api_key, self.limits.timeout_s),
                time.monotonic(),
            )
        return self._states[endpoint]

    def _next_state(self, route: Route) -> _EndpointState:
        if route not in self._rotations:
            self._rotations[route] = itertools.cycle([self._state(endpoint) for endpoint in route.endpoints])
        return next(self._rotations[route])

    async def _send(
        self, stage: str, route: Route, request: LLMRequest, params: dict, key: str, cache: Cache
    ) -> Response:
        usage = self.accounting.usage(stage, route.model)
        retries = 0
        while True:
            if self.stop_reason:
                raise _Stopped
            state = self._next_state(route)
            wait = state.paused_until - time.monotonic()
            if wait > 0:
                await self._sleep(wait)
            if state.requests:
                await state.requests.take(1)
            if state.tokens:
                await state.tokens.take(
                    sum(len(m["content"]) for m in request.messages) / 4 + params.get("max_tokens", 0)
                )
            if self.stop_reason:
                raise _Stopped
            # Encoded before waiting for a slot: when one frees up, sending is all that is left to do.
            mode = state.mode
            data = encode_body(self.request_body(route.model, request, params, key, state.endpoint, mode))
            await state.concurrency.acquire()
            if state.paused_until > time.monotonic():  # a Retry-After came while this request waited for a slot
                state.concurrency.release_slot()
                continue
            if state.mode != mode:  # the endpoint refused the mode meanwhile
                mode = state.mode
                data = encode_body(self.request_body(route.model, request, params, key, state.endpoint, mode))
            overloaded, delay = False, 0.0
            try:
                if self.refused:  # an endpoint refused the run: nothing more is sent, anywhere
                    raise self.refused
                if self.stop_reason:  # the build stopped while this request waited for a slot
                    raise _Stopped
                # Checked and counted with no await in between, so --max-requests N sends exactly N.
                worst_cost = self.accounting.worst_cost(route.model, request.messages, params)
                self.stop_reason = self.accounting.budget_exhausted(worst_cost)
                if self.stop_reason:
                    raise _Stopped
                usage.requests += 1
                self.accounting.reserved += worst_cost
                sent = time.monotonic()
                try:
                    response = await state.client.post(data, reply_limit(params))
                finally:
                    self.accounting.reserved -= worst_cost
                state.answered()
                # Put before anything else happens with it, and committed before this task goes on (Cache.put):
                # after a SIGKILL it is never paid again.
                cache.put(key, stage, route.model, response)
                usage.prompt_tokens += response.prompt_tokens
                usage.cached_tokens += response.cached_tokens
                usage.completion_tokens += response.completion_tokens
                usage.cost += self.accounting.cost(
                    route.model, response.prompt_tokens, response.completion_tokens, response.cached_tokens
                )
                return response
            except TransportError as error:
                if error.status is not None:  # an answer, if not one glan takes
                    state.answered()
                if error.status == 200:  # a reply glan refused: it may be billed, at a cost it did not say
                    usage.cost += worst_cost
                if error.status is None and self._found_dead(state, sent, error):  # refused or timed out
                    await state.client.close()  # its requests in flight end now, not at their timeouts
                    raise _Stopped from None
                overloaded = error.status == 429
                if (
                    schema_of(request.output_model) is not None
                    and state.endpoint.mode == "auto"
                    and mode in _FALLBACK
                    and _rejects_schema(error)
                ):
                    if state.mode == mode:  # requests in flight with the old mode fail too: step down once
                        state.mode = _FALLBACK[mode]
                        self.cache.remember_mode(state.endpoint.base_url, state.mode)
                    continue
                if error.status in _FATAL_STATUS:
                    advice = _FATAL_STATUS[error.status].replace("${env}", "$" + state.endpoint.api_key_env)
                    self.refused = EndpointError(
                        f"{state.endpoint.base_url}: HTTP {error.status}: {error.message} "
                        f"(model {route.model}); {advice}."
                    )
                    raise self.refused from None
                if not error.retryable or retries >= self.limits.max_retries:
                    raise
                retries += 1
                delay = error.retry_after_s if error.retry_after_s is not None else backoff_s(retries)
                if error.retry_after_s is not None:
                    state.paused_until = max(state.paused_until, time.monotonic() + delay)
                    self.retry_after_waits.append(delay)
                if state.failing_since is not None:  # try again by the time the endpoint would count as dead
                    delay = min(delay, state.failing_since + self.limits.dead_after_s - time.monotonic())
            finally:
                state.concurrency.release(overloaded)
            await self._sleep(delay)

    def _found_dead(self, state: _EndpointState, sent: float, error: TransportError) -> bool:
        """After a try that got no answer: whether the endpoint has answered nothing for dead_after_s, counted from
        its last answer or, when later, from when the first unanswered try was sent. If so the build stops."""
        if state.failing_since is None:
            state.failing_since = max(state.answered_at, sent)
        silent = time.monotonic() - state.failing_since
        if silent < self.limits.dead_after_s:
            return False
        self.stop_reason = self.stop_reason or (
            f"the endpoint {state.endpoint.base_url} has answered nothing for "
            f"{silent:.0f} s ({error}; limits.dead_after_s is "
            f"{self.limits.dead_after_s:g})"
        )
        self._stopping.set()
        return True

    async def _sleep(self, delay: float) -> None:
        """Sleeps `delay` seconds, or until the build stops."""
        if delay > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
