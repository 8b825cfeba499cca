"""OpenAI wire-format helpers shared by the online and batch endpoints of the test server."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def error_body(message: str, kind: str, code: str | None = None) -> dict:
    """The error object every OpenAI endpoint returns, which the `openai` client parses."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(), status=status, headers=headers,
        content_type="application/json",
    )  # fmt: skip


def not_found(kind: str, object_id: str) -> web.Response:
    return json_response(error_body(f"No such {kind}: '{object_id}'", "invalid_request_error"), 404)


def canonical(value: Any) -> bytes:
    """One byte string per JSON value, whoever serialized it: the key of deterministic content."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
