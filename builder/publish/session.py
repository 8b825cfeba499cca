"""Every Hub call of `glan push` and `glan pull` with a timeout and retries, so a stalled Hub ends the command
with one line instead of waiting forever (huggingface_hub's own client waits without a timeout on most calls).

The bound is GLAN_HUB_STALL_S (default 120 s): how long the Hub may go without answering before the command
gives up. Each request waits for the Hub at most that long, and a read (GET, HEAD) at most ATTEMPT_TIMEOUT_S
before it is tried again; a request that never reached the Hub (connection refused, reset before it was sent)
is tried again too, while the time since the Hub last answered is under the bound. A write that timed out is
not retried here: whether the Hub took it is unknown, and running the same command again resumes safely
(builder/publish/hub.py compares the repo with the folder first).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import httpx2
from huggingface_hub import get_session, set_client_factory

from ..errors import UserError

STALL_ENV = "GLAN_HUB_STALL_S"
DEFAULT_STALL_S = 120.0
ATTEMPT_TIMEOUT_S = 30.0
_READS = frozenset({"GET", "HEAD"})
_RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})


class HubUnreachable(UserError):
    """The Hub gave no answer within the bound; the command stopped with the repo as the Hub last had it."""

    exit_code = 1  # failed on the way: the same command resumes


class _Bound:
    """One command's bound, and per host since when it has not answered (None while it answers)."""

    def __init__(self, stall_s: float):
        self.stall_s = stall_s
        self.failing_since: dict[str, float] = {}


_active: _Bound | None = None  # set while a command's Hub calls are bounded


@contextmanager
def bounded_hub_calls():
    """Within this block, every request huggingface_hub makes (from any thread) has the timeout and retries above;
    outside it, its client behaves as huggingface_hub's own."""
    global _active
    bound = _Bound(_stall_bound())
    if not _installed:
        _install()
    _active = bound
    try:
        yield
    finally:
        _active = None


_installed = False


def _install() -> None:
    """huggingface_hub's shared client (its next one) gets the transport below and its own event hooks (offline
    mode, request ids)."""
    global _installed
    hooks = get_session().event_hooks
    # timeout=None as huggingface_hub's own client has it: the transport sets each request's
    set_client_factory(
        lambda: httpx2.Client(transport=_BoundedTransport(), event_hooks=hooks, follow_redirects=True, timeout=None)
    )
    _installed = True


def _stall_bound() -> float:
    text = os.environ.get(STALL_ENV)
    if text is None:
        return DEFAULT_STALL_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise UserError(
            f"{STALL_ENV}={text!r}: not a number of seconds above 0. Unset it for the default of "
            f"{DEFAULT_STALL_S:g} s, or set e.g. {STALL_ENV}=300."
        )
    return value


class _BoundedTransport(httpx2.HTTPTransport):
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        bound = _active
        if bound is None:
            return super().handle_request(request)
        host = request.url.netloc.decode()
        read = request.method in _READS
        backoff = 1.0
        reason = "no answer"
        while True:
            started = time.monotonic()
            since = bound.failing_since.get(host)
            left = bound.stall_s - (started - since) if since is not None else bound.stall_s
            if left <= 0:
                raise _unreachable(bound, host, request, reason)
            wait = min(left, ATTEMPT_TIMEOUT_S) if read else left
            timeouts = request.extensions["timeout"]
            request.extensions = {
                **request.extensions,
                "timeout": {name: wait if value is None else min(value, wait) for name, value in timeouts.items()},
            }
            try:
                response = super().handle_request(request)
            except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as error:
                timed_out = isinstance(error, httpx2.TimeoutException)
                reason = "timed out" if timed_out else str(error) or type(error).__name__
                bound.failing_since.setdefault(host, started)
                sent = not isinstance(error, (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout))
                if sent and not read:
                    raise _unreachable(bound, host, request, reason) from None
            else:
                if not (read and response.status_code in _RETRIED_STATUS):
                    bound.failing_since.pop(host, None)
                    return response
                reason = f"HTTP {response.status_code}"
                response.close()
                bound.failing_since.setdefault(host, started)
            time.sleep(max(0.0, min(backoff, bound.stall_s - (time.monotonic() - bound.failing_since[host]))))
            backoff = min(backoff * 2, 8.0)


def _unreachable(bound: _Bound, host: str, request: httpx2.Request, reason: str) -> HubUnreachable:
    waited = time.monotonic() - bound.failing_since.get(host, time.monotonic())
    return HubUnreachable(
        f"{host}: no answer from the Hub for {waited:.0f} s ({reason}, at {request.method} {request.url.path}). "
        f"Run the same command again once the Hub answers: it resumes. {STALL_ENV} sets how long glan waits "
        f"(now {bound.stall_s:g} s)."
    )
