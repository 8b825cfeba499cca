"""Requests, cache hits, tokens, cost and outcomes per stage and model; the budget that stops a run."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields

BATCH_PRICE_FACTOR = 0.5  # the OpenAI Batch API bills half the online price


@dataclass
class Usage:
    requests: int = 0  # HTTP calls sent (paid or not: a 429 still counts against --max-requests)
    cache_hits: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, those the endpoint served from its prefix cache
    completion_tokens: int = 0
    cost: float = 0.0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # not sent because the budget ran out
    prompt_chars: int = 0  # of the requests `glan estimate` skipped: their prompt size when none is cached yet
    cached_chars: int = 0  # ... and of that, what the endpoint's prompt cache would serve (llm/prompt_cache.py)

    def add(self, other: Usage) -> None:
        for name in _USAGE_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_USAGE_FIELDS = tuple(field.name for field in fields(Usage))


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens of one model: input, output, and input the endpoint served from its prefix cache
    (OpenAI bills it at a discount; the input price when the taxonomy names none)."""

    input: float
    output: float
    cached_input: float

    def cost(self, prompt_tokens: float, completion_tokens: float, cached_tokens: float = 0) -> float:
        uncached = prompt_tokens - cached_tokens
        return (uncached * self.input + cached_tokens * self.cached_input + completion_tokens * self.output) / 1e6


FREE = ModelPrice(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Budget:
    max_cost: float | None = None
    max_requests: int | None = None


class Accounting:
    def __init__(self, prices: dict[str, ModelPrice], budget: Budget = Budget()):
        self.prices = prices
        self.budget = budget
        self.by_stage_model: dict[tuple[str, str], Usage] = defaultdict(Usage)
        self.reserved = 0.0  # worst costs of the requests in flight

    def usage(self, stage: str, model: str) -> Usage:
        return self.by_stage_model[(stage, model)]

    def cost(
        self, model: str, prompt_tokens: float, completion_tokens: float, cached_tokens: float = 0, batch: bool = False
    ) -> float:
        cost = self.prices.get(model, FREE).cost(prompt_tokens, completion_tokens, cached_tokens)
        return cost * BATCH_PRICE_FACTOR if batch else cost

    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_stage_model.values():
            total.add(usage)
        return total

    def stage_total(self, stage: str) -> Usage:
        total = Usage()
        for (name, _), usage in self.by_stage_model.items():
            if name == stage:
                total.add(usage)
        return total

    def worst_cost(self, model: str, messages: list[dict], params: dict) -> float:
        """What a request can cost at most: its prompt (about 4 characters a token) and all of max_tokens.
        0 without a cost budget, which is the only reader."""
        if self.budget.max_cost is None:
            return 0.0
        prompt_tokens = sum(len(message["content"]) for message in messages) / 4
        return self.cost(model, prompt_tokens, params.get("max_tokens", 0))

    def budget_exhausted(self, next_cost: float = 0.0) -> str | None:
        """Why no further request may be sent, if so. A request in flight holds its worst cost in `reserved`
        until it is answered, so concurrent requests never take the spending over --max-cost together."""
        if self.budget.max_requests is None and self.budget.max_cost is None:
            return None
        total = self.total()
        if self.budget.max_requests is not None and total.requests >= self.budget.max_requests:
            return f"--max-requests {self.budget.max_requests} reached"
        if self.budget.max_cost is not None and total.cost + self.reserved + next_cost > self.budget.max_cost:
            return (
                f"--max-cost {self.budget.max_cost:g} USD reached (spent {total.cost:.4f} USD; the next request "
                f"could cost up to {next_cost:.4f} USD)"
            )
        return None
