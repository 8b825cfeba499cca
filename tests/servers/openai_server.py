"""An OpenAI-protocol server for tests: chat completions with schema-valid fake content, faults on
demand, request accounting, and the Files + Batch API.

Runs in its own process so a benchmark's client does not share its CPU:

    python -m tests.servers.openai_server --port 0 --latency-ms 100 --fault-rate 0.1

prints one line `listening on http://127.0.0.1:PORT`, then serves until killed. Every knob of
`Knobs` is also a flag (`--fault-rate 0.1`, `--faults '{"429": 1}'`, `--reject-json-schema`) and
can be changed at run time with `POST /_admin/config`.

Content is a pure function of the request body (sha256 of its canonical JSON seeds the RNG), so
the same body always gets the same answer, online or in a batch. Faults are a function of the
arrival index instead, so a retry of a faulted body can succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import random
import re
import sys
import time
from typing import Any

from aiohttp import web

from tests.servers.batch_api import BatchAPI
from tests.servers.schema_fill import Generator, compile_schema, sentence
from tests.servers.wire import canonical, error_body, json_response

FAULT_KINDS = (
    "429", "500", "503", "hang", "reset",
    "truncated", "invalid_json", "schema_invalid", "empty", "length",
)  # fmt: skip

# The client's prompt mode puts the output schema in a fenced block; the last one wins.
_FENCED_JSON = re.compile(r"```json[ \t]*\n(.*?)```", re.DOTALL)


@dataclasses.dataclass
class Knobs:
    latency_ms: float = 0
    fault_rate: float = 0.0
    faults: dict[str, float] = dataclasses.field(default_factory=dict)  # {} = all kinds alike
    retry_after_s: float = 1
    hang_s: float = 30
    fault_seed: int = 0
    reject_json_schema: bool = False
    require_api_key: str | None = None
    models: list[str] = dataclasses.field(default_factory=lambda: ["test-model"])
    batch_delay_s: float = 0.5
    batch_error_rate: float = 0.0
    batch_error_status: int = 500  # 500: a server error worth resending; 400: the request's own fault
    batch_expire: bool | list[int] = False  # True: the second half of every batch expires

    def merge(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}; known: {sorted(known)}")
            if name == "faults" and not set(value) <= set(FAULT_KINDS):
                raise ValueError(f"unknown fault kind in {value}; known: {FAULT_KINDS}")
            setattr(self, name, value)


class FakeOpenAI:
    def __init__(self, knobs: Knobs):
        self.knobs = knobs
        self.log: list[dict] = []
        self.responses = 0
        self.fault_counts: dict[str, int] = {}
        self.generators: dict[str, Generator | None] = {}
        self.batch_api = BatchAPI(self)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self.chat_completions),
            web.get("/v1/models", self.list_models),
            web.get("/_admin/stats", self.stats),
            web.get("/_admin/log", self.get_log),
            web.post("/_admin/config", self.configure),
            web.post("/_admin/reset", self.reset),
            *self.batch_api.routes(),
        ]

    # -- chat completions -------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        arrival = len(self.log)
        record = {
            "n": arrival, "body_sha256": None, "received": time.monotonic(), "responded": None,
            "status": None, "fault": None, "seed": None,
        }  # fmt: skip
        self.log.append(record)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._finish(record, 400, error_body("body is not JSON", "invalid_request_error"))
        digest = hashlib.sha256(canonical(body)).digest()
        record["body_sha256"], record["seed"] = digest.hex(), body.get("seed")
        if denied := self.denied(request):
            return self._finish(record, 401, denied)

        knobs = self.knobs
        fault = self._pick_fault(arrival)
        if fault:
            record["fault"] = fault
            self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        if fault == "hang":
            await asyncio.sleep(knobs.hang_s)
            fault = None
        elif fault == "reset":
            # No response at all: the client sees the connection drop mid-request.
            request.transport.abort()
            return web.Response()
        elif fault == "429":
            return self._finish(
                record, 429,
                error_body("Rate limit reached (test server)", "requests", "rate_limit_exceeded"),
                headers={"Retry-After": f"{knobs.retry_after_s:g}"},
            )  # fmt: skip
        elif fault in ("500", "503"):
            return self._finish(record, int(fault), error_body(f"fault {fault}", "server_error"))

        status, payload = self.complete(body, digest, f"chatcmpl-{arrival}")
        if status == 200 and fault:  # hang has become None: only content faults are left here
            spoil(payload["choices"][0], fault)
        return self._finish(record, status, payload)

    def _finish(self, record: dict, status: int, payload: dict, headers=None) -> web.Response:
        record["status"], record["responded"] = status, time.monotonic()
        self.responses += 1
        return json_response(payload, status, headers)

    def _pick_fault(self, arrival: int) -> str | None:
        knobs = self.knobs
        if knobs.fault_rate <= 0:
            return None
        rng = random.Random(f"{knobs.fault_seed}:{arrival}")
        if rng.random() >= knobs.fault_rate:
            return None
        weights = knobs.faults or dict.fromkeys(FAULT_KINDS, 1)
        return rng.choices(list(weights), list(weights.values()))[0]

    def denied(self, request: web.Request) -> dict | None:
        """The 401 body when require_api_key is set and the request does not carry that key."""
        expected = self.knobs.require_api_key
        if expected is None or request.headers.get("Authorization") == f"Bearer {expected}":
            return None
        return error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    def complete(self, body: dict, digest: bytes, completion_id: str) -> tuple[int, dict]:
        """The answer to a chat request without faults; shared by the online and batch endpoints."""
        fmt = body.get("response_format") or {}
        if self.knobs.reject_json_schema and fmt.get("type") == "json_schema":
            # What llama.cpp's server answers: it knows json_object + schema, not json_schema.
            message = "response_format 'json_schema' is not supported; use 'json_object' with 'schema'"
            return 400, error_body(message, "invalid_request_error", "unsupported_response_format")
        generate = self._generator(body, fmt)
        rng = random.Random(digest)
        content = sentence(rng) if generate is None else json.dumps(generate(rng))
        prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", ()))
        prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(content) // 4 + 1
        return 200, {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }  # fmt: skip

    def _generator(self, body: dict, fmt: dict) -> Generator | None:
        """The compiled schema this request asks for, or None for free text; compiled once each."""
        schema: Any = None
        if fmt.get("type") == "json_schema":
            schema = fmt["json_schema"]["schema"]
        elif fmt.get("type") == "json_object" and "schema" in fmt:
            schema = fmt["schema"]
        if schema is not None:
            key = json.dumps(schema, sort_keys=True)
        else:
            blocks = [
                block
                for message in body.get("messages", ())
                if isinstance(message.get("content"), str)
                for block in _FENCED_JSON.findall(message["content"])
            ]
            if not blocks:
                return None
            key = blocks[-1]
        if key not in self.generators:
            try:
                self.generators[key] = compile_schema(json.loads(key))
            except ValueError:  # a fenced block that is not JSON: answer in prose
                self.generators[key] = None
        return self.generators[key]

    # -- admin ------------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        if denied := self.denied(request):
            return json_response(denied, 401)
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "test"} for name in self.knobs.models
        ]
        return json_response({"object": "list", "data": models})

    async def stats(self, request: web.Request) -> web.Response:
        stats = {"requests": len(self.log), "responses": self.responses, "faults": self.fault_counts}
        return json_response(stats)

    async def get_log(self, request: web.Request) -> web.Response:
        return json_response(self.log)

    async def configure(self, request: web.Request) -> web.Response:
        try:
            self.knobs.merge(await request.json())
        except ValueError as error:
            return json_response(error_body(str(error), "invalid_request_error"), 400)
        return json_response(dataclasses.asdict(self.knobs))

    async def reset(self, request: web.Request) -> web.Response:
        self.log, self.responses, self.fault_counts = [], 0, {}
        return json_response({"ok": True})


def spoil(choice: dict, fault: str) -> None:
    """Faults that still answer 200 but with content the client must reject. schema_invalid is a
    JSON array: valid JSON that fails every object schema, even one without required fields."""
    message = choice["message"]
    if fault in ("truncated", "length"):
        message["content"] = message["content"][: len(message["content"]) // 2]
    else:
        message["content"] = {"invalid_json": "not json {", "schema_invalid": "[]", "empty": ""}[fault]
    if fault == "length":
        choice["finish_reason"] = "length"


def _flag_value(text: str) -> Any:
    """A flag's value is JSON when it parses (numbers, lists, objects), else a plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_args(argv: list[str]) -> tuple[int, Knobs]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Knob values are JSON (numbers, lists, objects) or else plain strings.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    for knob in dataclasses.fields(Knobs):
        flag = "--" + knob.name.replace("_", "-")
        if knob.type.startswith("bool"):
            parser.add_argument(flag, dest=knob.name, nargs="?", const=True, type=_flag_value)
        else:
            parser.add_argument(flag, dest=knob.name, type=_flag_value)
    args = vars(parser.parse_args(argv))
    port = args.pop("port")
    knobs = Knobs()
    try:
        knobs.merge({name: value for name, value in args.items() if value is not None})
    except ValueError as error:
        parser.error(str(error))
    return port, knobs


async def serve(port: int, knobs: Knobs) -> None:
    app = web.Application(client_max_size=1 << 30)  # batch input files can be large
    app.add_routes(FakeOpenAI(knobs).routes())
    # No access log: formatting a line per request would cost about as much as answering it.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # A deep backlog: hundreds of clients connect at once and a full queue costs them a 1 s SYN retry.
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    port, knobs = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(port, knobs))


if __name__ == "__main__":
    main()
