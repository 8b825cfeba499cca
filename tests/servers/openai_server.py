"""An OpenAI-protocol server for tests: chat completions with schema-valid fake content (or, for a
free-text request, a plausible question or answer), faults on demand, a log of what each request asked
for, and the Files + Batch API.

Runs in its own process so a benchmark's client does not share its CPU:

    python -m tests.servers.openai_server --port 0 --latency-ms 100 --fault-rate 0.1

prints one line `listening on http://127.0.0.1:PORT`, then serves until killed. Every knob of
`Knobs` is also a flag (`--fault-rate 0.1`, `--faults '{"429": 1}'`, `--reject-json-schema`) and
can be changed at run time with `POST /_admin/config`.

Requests are checked as OpenAI checks them (tests/servers/chat_rules.py) before anything else.
Content is a pure function of the request body (sha256 of its canonical JSON seeds the RNG), so
the same body always gets the same answer, online or in a batch; except the texts of `question_pool`
and `answer_pool`, served in turn so that as many requests as a pool holds texts serve each of them.
Faults are a function of the arrival index (`fault_rate`, `faults_at`), so a retry of a faulted body
can succeed, or of the request's messages (`item_faults`), so every attempt at one item fails alike.
Hostile endpoints: `raw_reply` answers with any body at all, `huge_reply_bytes` streams a reply of any
size, `down_from` makes the endpoint die (connections dropped, or left hanging) from a given arrival on.

What a request asks for (`output_of`, logged as `output`): the name of the schema it sends, or for free
text (no schema) "question" when its system message speaks of homework (glan's questions prompt) and
"answer" otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import email.utils
import hashlib
import json
import math
import random
import re
import sys
import time
from typing import Any

from aiohttp import web

from tests.servers.batch_api import BatchAPI
from tests.servers.chat_rules import refusal
from tests.servers.schema_fill import Generator, answer, compile_schema, question
from tests.servers.wire import canonical, error_body, json_response

FAULT_KINDS = (
    "429", "500", "502", "503", "hang", "reset",
    "truncated", "invalid_json", "schema_invalid", "empty", "length", "form_feed", "nul",
)  # fmt: skip
# Refused at once, before the latency a completion takes: what a rate limiter or a proxy does.
ERROR_FAULTS = ("429", "500", "502", "503")
# Break the JSON of a reply (a string cut off without finish_reason "length" included): a free-text request has
# none to break, and is answered as if no fault was drawn.
JSON_FAULTS = ("truncated", "invalid_json", "schema_invalid")
RETRY_AFTER_FORMS = ("seconds", "ms", "date")
# What nginx answers when the model server behind it is down: HTML, not JSON.
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

# The client's prompt mode puts the output schema in a fenced block; the last one wins.
_FENCED_JSON = re.compile(r"```json[ \t]*\n(.*?)```", re.DOTALL)


@dataclasses.dataclass
class Knobs:
    latency_ms: float = 0
    fault_rate: float = 0.0
    faults: dict[str, float] = dataclasses.field(default_factory=dict)  # {} = all kinds alike
    faults_at: dict[str, str] = dataclasses.field(default_factory=dict)  # arrival index -> kind, always
    item_faults: dict[str, float] = dataclasses.field(default_factory=dict)  # kind -> share of items (messages)
    item_fault_output: str | None = None  # item_faults only hit requests for this output (output_of)
    retry_after_s: float = 1
    retry_after_form: str = "seconds"  # 429s carry Retry-After: seconds | retry-after-ms | an HTTP date
    hang_s: float = 30
    fault_seed: int = 0
    reject_json_schema: bool = False
    reject_json_object: bool = False
    require_api_key: str | None = None
    models: list[str] = dataclasses.field(default_factory=lambda: ["test-model"])  # any other: 404
    forbidden_models: list[str] = dataclasses.field(default_factory=list)  # known, but this key may not: 403
    question_pool: list[str] = dataclasses.field(default_factory=list)  # questions served from it, in turn
    answer_pool: list[str] = dataclasses.field(default_factory=list)  # answers served from it, in turn
    # marker -> reply content: a request whose last message contains the marker gets this content exactly (a judge's
    # verdict on a pair whose answer holds the marker, say), whatever it asks for.
    scripted_replies: dict[str, str] = dataclasses.field(default_factory=dict)
    hold: bool = False  # answers wait (requests are still received and logged) until hold is lifted
    log_bodies: bool = False  # the log keeps each request's body as received (text), e.g. to look for a secret
    hold_from_output: str | None = None  # the first request for this output (output_of) turns hold on
    batch_delay_s: float = 0.5
    batch_error_rate: float = 0.0
    batch_error_status: int = 500  # 500: a server error worth resending; 400: the request's own fault
    batch_expire: bool | list[int] = False  # True: the second half of every batch expires
    batch_max_requests: int = 50_000  # per input file, as the Batch API allows
    batch_max_bytes: int = 200 * 1000 * 1000
    # A hostile or broken endpoint. raw_reply: this body exactly, "{api_key}" replaced by the request's bearer key,
    # with raw_reply_status, to the first raw_reply_count arrivals (None: to every request); and as the body of
    # every batch line (then it must be JSON).
    raw_reply: str | None = None
    raw_reply_status: int = 200
    raw_reply_count: int | None = None
    huge_reply_bytes: int = 0  # answers stream a valid reply of this many bytes; the log counts those sent
    huge_reply_gzip: bool = False  # ... gzip-compressed (a few KB on the wire)
    down_from: int | None = None  # from this arrival index on, no answer: the endpoint has died
    down_fault: str = "reset"  # how it died: "reset" (connections dropped) or "hang" (hang_s, then dropped)
    # The prompt cache, as OpenAI's: a prompt's longest prefix seen before, in blocks of prompt_cache_block_tokens
    # once it reaches prompt_cache_min_tokens, is reported as usage.prompt_tokens_details.cached_tokens (a token is
    # 4 characters of the messages' contents here). The last prompt_cache_blocks prefixes are remembered.
    prompt_cache_min_tokens: int = 1024
    prompt_cache_block_tokens: int = 128
    prompt_cache_blocks: int = 1_000_000

    def merge(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}; known: {sorted(known)}")
            kinds = set(value) if name in ("faults", "item_faults") else set(value.values()) \
                if name == "faults_at" else set()
            if not kinds <= set(FAULT_KINDS):
                raise ValueError(f"unknown fault kind in {value}; known: {FAULT_KINDS}")
            if name == "retry_after_form" and value not in RETRY_AFTER_FORMS:
                raise ValueError(f"retry_after_form {value!r}; known: {RETRY_AFTER_FORMS}")
            if name == "down_fault" and value not in ("reset", "hang"):
                raise ValueError(f"down_fault {value!r}; known: reset, hang")
            setattr(self, name, value)


class FakeOpenAI:
    def __init__(self, knobs: Knobs):
        self.knobs = knobs
        self.log: list[dict] = []
        self.responses = 0
        self.fault_counts: dict[str, int] = {}
        self.generators: dict[str, Generator | None] = {}
        self.drawn = {"question": 0, "answer": 0}  # texts served from each pool so far
        self.prefixes: collections.OrderedDict[bytes, None] = collections.OrderedDict()  # the prompt cache
        self.batch_api = BatchAPI(self)
        self.released = asyncio.Event()  # set unless knob `hold` is on
        self._apply_hold()

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
            "n": arrival, "body_sha256": None, "messages_sha256": None, "received": time.monotonic(),
            "responded": None, "status": None, "fault": None, "seed": None, "model": None, "max_tokens": None,
            "prompt_tokens": None, "cached_tokens": None, "prompt_cache_key": None, "response_format": None, "schema": None, "output": None, "content": None,
            "sent_bytes": None,
        }  # fmt: skip
        self.log.append(record)
        raw = await request.read()
        if self.knobs.log_bodies:
            record["body"] = raw.decode(errors="replace")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._finish(record, 400, error_body("body is not JSON", "invalid_request_error"))
        digest = hashlib.sha256(canonical(body)).digest()
        if isinstance(body, dict):
            record.update(describe(body), body_sha256=digest.hex())
        if record["output"] is not None and record["output"] == self.knobs.hold_from_output:
            self.knobs.hold = True
            self._apply_hold()
        if denied := self.denied(request):
            return self._finish(record, 401, denied)
        if refused := refusal(body, self.knobs):
            return self._finish(record, *refused)

        knobs = self.knobs
        if knobs.down_from is not None and arrival >= knobs.down_from:
            record["fault"] = "down"
            if knobs.down_fault == "hang":
                await asyncio.sleep(knobs.hang_s)
            request.transport.abort()
            return web.Response()
        if knobs.raw_reply is not None and (knobs.raw_reply_count is None or arrival < knobs.raw_reply_count):
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            self._answered(record, knobs.raw_reply_status)
            return web.Response(body=knobs.raw_reply.replace("{api_key}", key).encode(errors="surrogatepass"),
                                status=knobs.raw_reply_status, content_type="application/json")
        if knobs.huge_reply_bytes:
            return await self._huge_reply(request, record)
        fault = self._pick_fault(arrival, record)
        if fault in JSON_FAULTS and record["schema"] is None:
            fault = None
        if fault:
            record["fault"] = fault
            self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        if fault in ERROR_FAULTS:
            await self.released.wait()
            return self._error_fault(record, fault)
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        if fault == "hang":
            await asyncio.sleep(knobs.hang_s)
            fault = None
        elif fault == "reset":
            # No response at all: the client sees the connection drop mid-request.
            request.transport.abort()
            return web.Response()
        await self.released.wait()
        status, payload = self.complete(body, digest, f"chatcmpl-{arrival}")
        if status == 200:
            if fault:  # hang has become None: only content faults are left here
                spoil(payload["choices"][0], fault)
            record["content"] = payload["choices"][0]["message"]["content"]
            record["cached_tokens"] = payload["usage"]["prompt_tokens_details"]["cached_tokens"]
        return self._finish(record, status, payload)

    async def _huge_reply(self, request: web.Request, record: dict) -> web.StreamResponse:
        """A chat completion whose content fills huge_reply_bytes, streamed (no Content-Length) until it ends or
        the client hangs up; record["sent_bytes"] counts what was written."""
        head = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"'
        tail = b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}'
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if self.knobs.huge_reply_gzip:
            response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        record["sent_bytes"], filler = 0, b"x" * 65536
        remaining = self.knobs.huge_reply_bytes - len(head) - len(tail)
        try:
            for chunk in (head, *([filler] * (remaining // len(filler))), filler[:remaining % len(filler)], tail):
                await response.write(chunk)
                record["sent_bytes"] += len(chunk)
            await response.write_eof()
        except ConnectionError:  # the client stopped reading
            pass
        self._answered(record, 200)
        return response

    def _finish(self, record: dict, status: int, payload: dict, headers=None) -> web.Response:
        self._answered(record, status)
        return json_response(payload, status, headers)

    def _answered(self, record: dict, status: int) -> None:
        record["status"], record["responded"] = status, time.monotonic()
        self.responses += 1

    def _error_fault(self, record: dict, fault: str) -> web.Response:
        if fault == "429":
            return self._finish(
                record, 429, error_body("Rate limit reached (test server)", "requests", "rate_limit_exceeded"),
                headers=retry_after_headers(self.knobs),
            )  # fmt: skip
        if fault == "502":
            self._answered(record, 502)
            return web.Response(text=BAD_GATEWAY_HTML, status=502, content_type="text/html")
        return self._finish(record, int(fault), error_body(f"fault {fault}", "server_error"))

    def _pick_fault(self, arrival: int, record: dict) -> str | None:
        knobs = self.knobs
        if str(arrival) in knobs.faults_at:
            return knobs.faults_at[str(arrival)]
        if knobs.item_faults and knobs.item_fault_output in (None, record["output"]):
            draw = random.Random(record["messages_sha256"]).random()
            for kind, share in knobs.item_faults.items():
                if draw < share:
                    return kind
                draw -= share
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
        if refused := refusal(body, self.knobs):
            return refused
        generate = self._generator(body)
        rng = random.Random(digest)
        if (scripted := self._scripted(body)) is not None:
            content = scripted
        elif generate is None:
            kind = output_of(body)
            content = self._drawn(kind) or (question(rng) if kind == "question" else answer(rng))
        else:
            value = generate(rng)
            for kind in ("question", "answer"):
                if isinstance(value, dict) and kind in value:
                    value[kind] = self._drawn(kind) or value[kind]
            content = json.dumps(value)
        usage = {"prompt_tokens": prompt_tokens(body), "completion_tokens": len(content) // 4 + 1}
        usage["prompt_tokens_details"] = {"cached_tokens": self._cached_tokens(body)}
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
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
        }  # fmt: skip

    def _cached_tokens(self, body: dict) -> int:
        """The tokens of the longest prefix of this prompt the cache holds, in whole blocks from the minimum on; the
        prompt's own prefixes are remembered for the next."""
        text = "".join(m["content"] for m in _messages(body) if isinstance(m.get("content"), str))
        knobs, block = self.knobs, 4 * self.knobs.prompt_cache_block_tokens
        digest, cached = hashlib.sha256(), 0
        for end in range(block, len(text) + 1, block):
            digest.update(text[end - block : end].encode(errors="replace"))
            prefix = digest.digest()  # of the whole text up to `end`: held, it was seen whole
            if prefix in self.prefixes:
                self.prefixes.move_to_end(prefix)
                cached = end
            else:
                self.prefixes[prefix] = None
        while len(self.prefixes) > knobs.prompt_cache_blocks:
            self.prefixes.popitem(last=False)
        tokens = cached // 4
        return tokens if tokens >= knobs.prompt_cache_min_tokens else 0

    def _scripted(self, body: dict) -> str | None:
        """The scripted reply of the first marker the request's last message holds, if any."""
        messages = _messages(body)
        last = messages[-1].get("content") if messages else None
        if not isinstance(last, str):
            return None
        return next((reply for marker, reply in self.knobs.scripted_replies.items() if marker in last), None)

    def _drawn(self, kind: str) -> str | None:
        """The next text of the pool of `kind` ("question" or "answer"), if the pool has any."""
        pool = self.knobs.question_pool if kind == "question" else self.knobs.answer_pool
        if not pool:
            return None
        self.drawn[kind] += 1
        return pool[(self.drawn[kind] - 1) % len(pool)]

    def _generator(self, body: dict) -> Generator | None:
        """The compiled schema this request asks for, or None for free text; compiled once each."""
        schema_text = requested_schema(body)
        if schema_text is None:
            return None
        if schema_text not in self.generators:
            try:
                self.generators[schema_text] = compile_schema(json.loads(schema_text))
            except ValueError:  # a fenced block that is not JSON: answer in prose
                self.generators[schema_text] = None
        return self.generators[schema_text]

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
        self._apply_hold()
        return json_response(dataclasses.asdict(self.knobs))

    def _apply_hold(self) -> None:
        if self.knobs.hold:
            self.released.clear()
        else:
            self.released.set()

    async def reset(self, request: web.Request) -> web.Response:
        self.log, self.responses, self.fault_counts = [], 0, {}
        return json_response({"ok": True})


def describe(body: dict) -> dict:
    """What the log keeps of a request: who it is (messages_sha256 is the same for every attempt at one
    prompt) and what it asked for (schema: the json_schema name, else the schema's title; output: output_of)."""
    fmt = _mapping(body.get("response_format"))
    schema_text = requested_schema(body)
    try:
        schema = _mapping(json.loads(schema_text)) if schema_text else {}
    except ValueError:
        schema = {}
    return {
        "messages_sha256": hashlib.sha256(canonical(body.get("messages"))).hexdigest(),
        "prompt_tokens": prompt_tokens(body),
        "seed": body.get("seed"), "model": body.get("model"), "max_tokens": body.get("max_tokens"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "response_format": fmt.get("type"),
        "schema": _mapping(fmt.get("json_schema")).get("name") or schema.get("title"),
        "output": output_of(body),
    }  # fmt: skip


def output_of(body: dict) -> str | None:
    """What a request asks for: its schema's name (json_schema name, else title), or for free text "question"
    when its system message speaks of homework (glan's questions prompt), else "answer"."""
    schema_text = requested_schema(body)
    if schema_text is not None:
        fmt = _mapping(body.get("response_format"))
        try:
            schema = _mapping(json.loads(schema_text))
        except ValueError:
            schema = {}
        return _mapping(fmt.get("json_schema")).get("name") or schema.get("title")
    system = next((m.get("content") for m in _messages(body) if m.get("role") == "system"), None)
    return "question" if isinstance(system, str) and "homework" in system.lower() else "answer"


def prompt_tokens(body: dict) -> int:
    """The usage this server reports for a prompt: a token per 4 characters of the messages, plus one."""
    return sum(len(m.get("content") or "") for m in _messages(body)) // 4 + 1


def requested_schema(body: dict) -> str | None:
    """The output schema a request asks for, as canonical JSON text: from response_format, or else the last
    fenced JSON block of its messages (the client's prompt mode); None for free text."""
    fmt = _mapping(body.get("response_format"))
    schema = _mapping(fmt.get("json_schema")).get("schema") if fmt.get("type") == "json_schema" else \
        fmt.get("schema") if fmt.get("type") == "json_object" else None
    if schema is not None:
        return json.dumps(schema, sort_keys=True)
    blocks = [
        block
        for message in _messages(body)
        if isinstance(message.get("content"), str)
        for block in _FENCED_JSON.findall(message["content"])
    ]
    return blocks[-1] if blocks else None


def _messages(body: dict) -> list[dict]:
    """The request's messages that are objects: the log describes a request before the chat rules refuse it."""
    messages = body.get("messages")
    return [message for message in messages if isinstance(message, dict)] if isinstance(messages, list) else []


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def retry_after_headers(knobs: Knobs) -> dict[str, str]:
    """A 429's wait in the form knob `retry_after_form` names; an HTTP date is rounded up to the second so
    that waiting until it never waits less than retry_after_s."""
    if knobs.retry_after_form == "ms":
        return {"retry-after-ms": str(round(knobs.retry_after_s * 1000))}
    if knobs.retry_after_form == "date":
        return {"Retry-After": email.utils.formatdate(math.ceil(time.time() + knobs.retry_after_s), usegmt=True)}
    return {"Retry-After": f"{knobs.retry_after_s:g}"}


def spoil(choice: dict, fault: str) -> None:
    """Faults that still answer 200 but with content the client must reject. schema_invalid is a
    JSON array: valid JSON that fails every object schema, even one without required fields. form_feed and
    nul put that character first in the text: in a JSON reply as its escape at the start of the first
    string (what `\frac` written inside JSON becomes), in free text as the character itself."""
    message = choice["message"]
    if fault in ("truncated", "length"):
        message["content"] = message["content"][: len(message["content"]) // 2]
    elif fault in ("form_feed", "nul"):
        content = message["content"]
        escape, character = {"form_feed": ("\\f", "\f"), "nul": ("\\u0000", "\x00")}[fault]
        message["content"] = re.sub(r'(?<=: ")', lambda _: escape, content, count=1) \
            if content.startswith(("{", "[")) else character + content
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
    # uvloop (a glan dependency) where it exists: the server's own CPU per request adds to the latency a
    # benchmark measures, and a real endpoint does not share the client's cores.
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port, knobs))
    else:
        uvloop.run(serve(port, knobs))


if __name__ == "__main__":
    main()
