"""Whether an endpoint can be reached at all, checked before a build sends it anything: one connection to each, a
few tries each, so that a refused connection or an unknown host stops the build with one line instead of every
request retrying for minutes."""

from __future__ import annotations

import asyncio
import errno
from urllib.parse import urlsplit

from .engine import EndpointError
from .routes import Endpoint

CONNECT_TRIES = 3
CONNECT_TIMEOUT_S = 5.0


async def check_reachable(endpoints: set[Endpoint]) -> None:
    """One connection to each endpoint, a few tries each: a refused connection or an unknown host stops the build
    here with one line, instead of every request retrying for minutes."""
    await asyncio.gather(*(_connect(endpoint.base_url) for endpoint in endpoints))


async def _connect(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    problem = None
    for attempt in range(CONNECT_TRIES):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), CONNECT_TIMEOUT_S)
            writer.close()
            return
        except (OSError, asyncio.TimeoutError) as error:
            problem = _reason(error)
            await asyncio.sleep(0.5 * 2**attempt)
    raise EndpointError(
        f"{url}: cannot connect ({problem}) after {CONNECT_TRIES} tries. Check the URL and that "
        "the server is running and reachable from this machine."
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(error, ConnectionRefusedError) or getattr(error, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    return str(error) or type(error).__name__
