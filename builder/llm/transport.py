"""One chat-completions POST over aiohttp, in the OpenAI API's request and response shapes.

The openai SDK costs ~2-3.5 ms of CPU per request (docs/engine.md); posting JSON directly costs
~0.3 ms, which is what lets one core keep >1,000 requests/s in flight. Bodies are encoded and replies
decoded with orjson: the standard library's json took ~30 us of each request's CPU for it. Errors keep
the endpoint's own message, because that is what tells the user what to fix. A reply is read only up to
its bound (builder/llm/reply.py), and the API key is taken out of its texts before any is cut or kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import time
from dataclasses import dataclass

import aiohttp
import orjson
import yarl

from .cache import Response
from .reply import read_completion, redact

RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))
MAX_RETRY_AFTER_S = 600.0


@dataclass
class TransportError(Exception):
    reason: str  # "http_429", "timeout", "connection", "bad_response" (a reply glan refuses), "too_large"
    message: str
    retryable: bool
    retry_after_s: float | None = None
    status: int | None = None

    def __str__(self):
        return f"{self.reason}: {self.message}"


def _retry_after(headers) -> float | None:
    """Seconds to wait, from retry-after-ms (Azure OpenAI) or Retry-After in seconds or as an HTTP date; at most
    MAX_RETRY_AFTER_S (a reply saying "inf", or a date in 2999, would stop every request to the endpoint)."""
    wait = _stated_wait(headers)
    if wait is None or math.isnan(wait) or wait < 0:
        return None  # absent or unreadable: our own backoff
    return min(wait, MAX_RETRY_AFTER_S)


def _stated_wait(headers) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return float(headers.get("retry-after-ms")) / 1000
    value = headers.get("retry-after")
    with contextlib.suppress(TypeError, ValueError):
        return float(value)
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


def _error_message(body: bytes, api_key: str | None) -> str:
    try:
        error = json.loads(body)["error"]
        message = error["message"] if isinstance(error, dict) else error
        if isinstance(message, str):
            return redact(message, api_key)
    except (ValueError, KeyError, TypeError, RecursionError):
        pass
    # Not the API's JSON (a proxy's HTML page, say): its text on one line, where a summary shows it.
    return _one_line(body, 300, api_key)


def _one_line(body: bytes, length: int, api_key: str | None) -> str:
    """The start of a body as one line of text: redacted whole, then cut (a cut could halve the key)."""
    return " ".join(redact(body.decode(errors="replace"), api_key)[:length].split())


class ChatEndpoint:
    """One endpoint's chat completions over one aiohttp session. Its URL is parsed and its headers (the API key
    among them) are set once, not for every request."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float):
        self.url = yarl.URL(f"{base_url.rstrip('/')}/chat/completions")
        self.api_key = api_key
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        # limit=0: the engine bounds concurrency itself (adaptively), the connector must not cap it.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            headers=headers,
        )

    async def close(self) -> None:
        await self.session.close()

    async def post(self, data: bytes, limit: int) -> Response:
        """POST an encoded chat-completions body (encode_body); a reply of more than `limit` bytes is refused
        as it arrives (reply_limit)."""
        try:
            async with self.session.post(self.url, data=data) as reply:
                raw = await _read(reply, limit)
                if reply.status != 200:
                    raise TransportError(
                        f"http_{reply.status}",
                        _error_message(raw, self.api_key),
                        reply.status in RETRYABLE_STATUS,
                        _retry_after(reply.headers),
                        reply.status,
                    )
        except asyncio.TimeoutError:
            raise TransportError("timeout", "no response within the timeout", True) from None
        except aiohttp.ClientError as error:
            raise TransportError("connection", str(error) or type(error).__name__, True) from None
        try:
            return read_completion(orjson.loads(raw), self.api_key)
        except orjson.JSONDecodeError as error:  # deep nesting included
            problem = f"not JSON ({error}): {_one_line(raw, 200, self.api_key)}"
        except ValueError as error:
            problem = str(error)
        raise TransportError("bad_response", problem, True, status=200)


def encode_body(body: dict) -> bytes:
    return orjson.dumps(body)


async def _read(reply: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, read a chunk at a time until it ends or passes `limit` (compressed bodies too: aiohttp inflates
    a chunk at a time when read like this, unlike read())."""
    if (reply.content_length or 0) > limit:
        raise _too_large(reply, limit)
    blocks, size = [], 0
    while block := await reply.content.readany():
        size += len(block)
        if size > limit:
            raise _too_large(reply, limit)
        blocks.append(block)
    return b"".join(blocks)


def _too_large(reply: aiohttp.ClientResponse, limit: int) -> TransportError:
    return TransportError(
        "too_large",
        f"HTTP {reply.status}: the reply passed {limit:,} bytes, the most glan reads "
        "of a reply to this request's max_tokens; refused as it arrived",
        True,
        status=reply.status,
    )
