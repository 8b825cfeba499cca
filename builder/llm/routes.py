"""Where a stage's requests go: a model, and the endpoints that serve it. Plain data, so that a run's plan can name
them without loading the engine and its HTTP client."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the variable: keys never enter settings or the cache
    mode: str = "auto"

    @property
    def is_openai(self) -> bool:
        """OpenAI's own API, which takes parameters (prompt_cache_key) that other servers may refuse."""
        return urlsplit(self.base_url).hostname == urlsplit(OPENAI_URL).hostname


@dataclass(frozen=True)
class Route:
    """Where one stage's requests go: a model served by one or more endpoints (spread round-robin)."""

    model: str
    endpoints: tuple[Endpoint, ...]
