"""What glan keeps of an endpoint's chat completion, and how much of it it reads.

A reply is untrusted input: whatever an endpoint sends, reading it gives a Response (whose fields cache.py
checks) or raises ValueError saying what is wrong, and the engine counts that as a failed try, never as a
crash or a cache entry. The API key is taken out of every text before anything keeps, cuts or prints it:
some endpoints echo it in an error, and a key cut in half by a truncation would no longer be found.
"""

from __future__ import annotations

from typing import Any

from .cache import Response, kind_of

# How many bytes a reply may take, read as it arrives (never after): a generous 32 bytes per token (a token is
# ~4 bytes of text; JSON escapes take a character to up to 12) plus 1 MiB for the rest of the body; 4 MiB when
# the request sets no max_tokens.
REPLY_BYTES_PER_TOKEN = 32
REPLY_HEADROOM_BYTES = 1 << 20
REPLY_BYTES_WITHOUT_MAX_TOKENS = 4 << 20
REDACTED = "***"


def reply_limit(params: dict) -> int:
    """The most bytes glan reads of the reply to a request with these sampling params."""
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    if not max_tokens:
        return REPLY_BYTES_WITHOUT_MAX_TOKENS
    return REPLY_HEADROOM_BYTES + REPLY_BYTES_PER_TOKEN * max_tokens


def redact(text: str, api_key: str | None) -> str:
    return text.replace(api_key, REDACTED) if api_key else text


def read_completion(body: Any, api_key: str | None) -> Response:
    """The Response of a chat.completion object (decoded JSON); ValueError when it is not one glan can keep."""
    if not isinstance(body, dict):
        raise ValueError(f"the reply is {kind_of(body)}, not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise ValueError(f"choices is {kind_of(choices)}, not a list")
    if not choices:
        raise ValueError("choices is empty")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ValueError("choices[0].message is missing")
    usage = body.get("usage")
    if usage is None:  # some servers report none: 0 tokens, as they say
        usage = {}
    if not isinstance(usage, dict):
        raise ValueError(f"usage is {kind_of(usage)}, not an object")
    content, finish_reason = message.get("content"), choice.get("finish_reason")
    prompt_tokens = usage.get("prompt_tokens", 0)
    return Response(
        "" if content is None else _redacted(content, api_key),
        _redacted(finish_reason, api_key),
        prompt_tokens,
        usage.get("completion_tokens", 0),
        cached_tokens(usage, body.get("timings"), prompt_tokens),
    )


def cached_tokens(usage: dict, timings: Any, prompt_tokens: Any) -> int:
    """How many of the prompt's tokens the endpoint says it served from its prefix cache: OpenAI's (and vLLM's)
    usage.prompt_tokens_details.cached_tokens, else llama.cpp's timings.cache_n. Only a discount rides on it, so a
    figure glan cannot believe (not a whole number, negative, more than the prompt) counts as none, and the prompt
    is priced in full: a hostile endpoint can make glan overstate its cost, never understate it."""
    details = usage.get("prompt_tokens_details")
    figure = details.get("cached_tokens") if isinstance(details, dict) else None
    if figure is None and isinstance(timings, dict):
        figure = timings.get("cache_n")
    if type(figure) is not int or type(prompt_tokens) is not int or not 0 <= figure <= prompt_tokens:
        return 0
    return figure


def _redacted(value: Any, api_key: str | None) -> Any:
    return redact(value, api_key) if isinstance(value, str) else value
