"""One chat-completions POST over aiohttp, in the OpenAI API's request and response shapes.

The openai SDK costs ~2-3.5 ms of CPU per request (docs/engine.md); posting JSON directly costs
~0.3 ms, which is what lets one core keep >1,000 requests/s in flight. Bodies are encoded and replies
decoded with orjson: the standard library's json took ~30 us of each request's CPU for it. Errors keep
the endpoint's own message, because that is what tells the user what to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from dataclasses import dataclass

import aiohttp
import orjson
import yarl

from .cache import Response

RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))


@dataclass
class TransportError(Exception):
    reason: str  # "http_429", "timeout", "connection", "bad_response"
    message: str
    retryable: bool
    retry_after_s: float | None = None
    status: int | None = None

    def __str__(self):
        return f"{self.reason}: {self.message}"


def _retry_after(headers) -> float | None:
    """Seconds to wait, from retry-after-ms (Azure OpenAI) or Retry-After in seconds or as an HTTP date."""
    with contextlib.suppress(TypeError, ValueError):
        return float(headers.get("retry-after-ms")) / 1000
    value = headers.get("retry-after")
    with contextlib.suppress(TypeError, ValueError):
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None  # absent or unreadable: our own backoff


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return error["message"] if isinstance(error, dict) else str(error)
    except (ValueError, KeyError, TypeError):
        # Not the API's JSON (a proxy's HTML page, say): its text on one line, where a summary shows it.
        return " ".join(body[:300].decode(errors="replace").split())


class ChatEndpoint:
    """One endpoint's chat completions over one aiohttp session. Its URL is parsed and its headers (the API key
    among them) are set once, not for every request."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float):
        self.url = yarl.URL(f"{base_url.rstrip('/')}/chat/completions")
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        # limit=0: the engine bounds concurrency itself (adaptively), the connector must not cap it.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                                             timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers)

    async def close(self) -> None:
        await self.session.close()

    async def post(self, data: bytes) -> Response:
        """POST an encoded chat-completions body (encode_body)."""
        try:
            async with self.session.post(self.url, data=data) as reply:
                raw = await reply.read()
                if reply.status != 200:
                    raise TransportError(f"http_{reply.status}", _error_message(raw),
                                         reply.status in RETRYABLE_STATUS, _retry_after(reply.headers), reply.status)
        except asyncio.TimeoutError:
            raise TransportError("timeout", "no response within the timeout", True)
        except aiohttp.ClientError as error:
            raise TransportError("connection", str(error) or type(error).__name__, True)
        return _response(raw)


def encode_body(body: dict) -> bytes:
    return orjson.dumps(body)


def _response(raw: bytes) -> Response:
    try:
        data = orjson.loads(raw)
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Response(choice["message"].get("content") or "", choice.get("finish_reason"),
                        usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise TransportError("bad_response", raw[:200].decode(errors="replace"), True)
