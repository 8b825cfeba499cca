"""Test servers, each in its own process and reached over real HTTP on 127.0.0.1.

    with start_openai_server(latency_ms=100) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test")
        ...
        server.configure(fault_rate=1, faults={"429": 1})
        assert server.stats()["requests"] == 3
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120  # a few seconds on a quiet machine; generous, so that a machine with every core busy passes


class OpenAIServer:
    """Handle on a running `tests.servers.openai_server` process; admin calls use stdlib urllib."""

    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/v1"

    def stats(self) -> dict:
        """{"requests": chat requests received, "responses": answers sent, "faults": {kind: n}}."""
        return self._call("GET", "/_admin/stats")

    def log(self) -> list[dict]:
        """One record per chat request in arrival order: n, received, responded (the server's
        time.monotonic()), status, fault, content (the answer sent with a 200), and what the request
        asked for: body_sha256, messages_sha256 (alike for every attempt at one prompt), model, seed,
        max_tokens, prompt_tokens, response_format (its type, None in prompt mode) and schema (the
        json_schema name, else the schema's title); with the log_bodies knob, body (the request as received)."""
        return self._call("GET", "/_admin/log")

    def configure(self, **knobs: Any) -> dict:
        """Merge knobs into the running server's configuration; returns all knobs."""
        return self._call("POST", "/_admin/config", knobs)

    def reset(self) -> None:
        """Clear counters and log (arrival indices restart at 0); the knobs stay, and so do the prompt cache (a
        prompt sent before reset is a cache hit after it) and the pools' positions (the next text is the one after
        the last served)."""
        self._call("POST", "/_admin/reset", {})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process.stdout.close()

    def __enter__(self) -> OpenAIServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


def most_in_flight(log: list[dict]) -> int:
    """The most requests the server held at once, from its log (OpenAIServer.log)."""
    events = sorted([(record["received"], 1) for record in log] + [(record["responded"], -1) for record in log])
    in_flight = most = 0
    for _, change in events:
        in_flight += change
        most = max(most, in_flight)
    return most


def start_openai_server(port: int = 0, **knobs: Any) -> OpenAIServer:
    """Start the OpenAI-protocol test server with the given knobs (see openai_server.Knobs), on `port` (0: a free
    one; a port a killed server used, to bring the same endpoint back)."""
    command = [sys.executable, "-m", "tests.servers.openai_server", "--port", str(port)]
    for name, value in knobs.items():
        command += ["--" + name.replace("_", "-"), json.dumps(value)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    return OpenAIServer(process, _await_port(process))


def _await_port(process: subprocess.Popen) -> int:
    """Read the `listening on http://127.0.0.1:PORT` line, or fail with what went wrong."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=START_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("listening on http://127.0.0.1:"):
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(
            f"test server did not start within {START_TIMEOUT_S} s "
            f"(exit code {process.returncode}, first line {line!r}); its stderr is above"
        )
    return int(line.rsplit(":", 1)[1])
