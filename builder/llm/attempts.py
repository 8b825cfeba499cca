"""How one request walks its attempts: attempt k is cache key k.

An output that fails validation moves on to attempt k+1 (a new key, so a rerun replays the same
attempts from the cache); one cut off at the token limit also doubles max_tokens, once (the same limit
would likely cut it again). The engine and the Batch API runner both walk requests with it, so they
agree on every key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .cache import Cache, Response, cache_key
from .free_text import FreeText
from .structured import parse_output


@functools.cache  # once per output model: pydantic's schema generation costs more than a request's I/O
def schema_of(output_model: type[BaseModel] | FreeText) -> dict | None:
    """The JSON schema a request asks for; None for free text, which asks for none."""
    return None if isinstance(output_model, FreeText) else output_model.model_json_schema()


@dataclass
class LLMRequest:
    item_id: str
    messages: list[dict]
    params: dict
    output_model: type[BaseModel] | FreeText
    sample_index: int = 0
    # Requests that share a long prefix share it (the subject): OpenAI routes them to the same prompt cache. Not part
    # of the cache key: it shapes where a request goes, not what comes back.
    prompt_cache_key: str | None = None


Tokens = tuple[int, int, int]


@dataclass
class LLMResult:
    value: Any = None
    failure: str | None = None  # the last reason the request got no valid output
    transient: bool = False  # the failure was the endpoint's (retries ran out), not the output's: a rerun resends
    skipped: bool = False  # not sent: the budget ran out, or `glan estimate`
    batched: bool = False  # not sent: collected into a Batch API file; the unit resumes after the batch
    attempts: int = 0
    last_output: str = ""  # of a failed request, for the failure report
    tokens: Tokens = (0, 0, 0)  # prompt, of them cached, completion: of every response its attempts got

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.skipped and not self.batched


class Attempts:
    def __init__(self, model: str, request: LLMRequest, max_attempts: int):
        self.model, self.request, self.max_attempts = model, request, max_attempts
        self.params = dict(request.params)
        self.attempt, self.widened = 0, False
        self.ok, self.value = False, None
        self.reason, self.last_text = None, ""  # of the last invalid output
        self.tokens: Tokens = (0, 0, 0)
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
        prompt, cached, completion = self.tokens
        self.tokens = (
            prompt + response.prompt_tokens,
            cached + response.cached_tokens,
            completion + response.completion_tokens,
        )
        try:
            value, reason = parse_output(response.text, self.request.output_model)
        except Exception as error:  # the reply is untrusted (RecursionError on deep nesting, say): its attempt fails
            value, reason = None, f"unparseable: {type(error).__name__}: {str(error)[:200]}"
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

    def result(self) -> LLMResult:
        """The outcome once `done`: the valid output, or the last failure."""
        if self.ok:
            return LLMResult(value=self.value, attempts=self.attempt + 1, tokens=self.tokens)
        return LLMResult(failure=self.reason, attempts=self.attempt, last_output=self.last_text, tokens=self.tokens)

    def _key(self) -> str:
        return cache_key(
            model=self.model,
            messages=self.request.messages,
            params=self.params,
            schema=schema_of(self.request.output_model),
            sample_index=self.request.sample_index,
            attempt=self.attempt,
        )
