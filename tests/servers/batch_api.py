"""The OpenAI Files and Batch APIs of the test server, kept in memory.

A batch goes validating -> in_progress (after half of knob `batch_delay_s`) -> completed (after
all of it; the knob as it is while the batch waits, so a test can hold a batch and then let it go), or ends `failed`, `cancelled`, or `expired`. Input is checked as the Batch API checks it:
an upload with purpose "batch" is at most `batch_max_bytes`; a batch's input file must have that
purpose, and the batch fails when a line is malformed or not for its endpoint, a custom_id repeats,
the lines name more than one model, or there are more than `batch_max_requests` of them. Each request
line is answered exactly as the online endpoint answers the same body (refusals included), minus the
online faults; instead, knob `batch_error_rate` turns lines into errors (knob `batch_error_status`: 500,
or 400) and knob `batch_expire` leaves lines unfinished. Output lines come in a shuffled order, as
OpenAI does not promise the input order: match them by custom_id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from typing import TYPE_CHECKING

from aiohttp import web

from tests.servers.wire import canonical, error_body, json_response, not_found

if TYPE_CHECKING:
    from tests.servers.openai_server import FakeOpenAI

CHAT_ENDPOINT = "/v1/chat/completions"
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


class BatchAPI:
    def __init__(self, server: FakeOpenAI):
        self.server = server
        self.files: dict[str, tuple[dict, bytes]] = {}
        self.batches: dict[str, dict] = {}
        self.tasks: set[asyncio.Task] = set()  # a reference keeps a running batch from being collected

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/files", self.upload),
            web.get("/v1/files/{file_id}", self.file_object),
            web.get("/v1/files/{file_id}/content", self.file_content),
            web.delete("/v1/files/{file_id}", self.delete_file),
            web.post("/v1/batches", self.create_batch),
            web.get("/v1/batches", self.list_batches),
            web.get("/v1/batches/{batch_id}", self.batch_object),
            web.post("/v1/batches/{batch_id}/cancel", self.cancel_batch),
        ]

    # -- files ------------------------------------------------------------------------------

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict:
        file_id = f"file-{len(self.files) + 1:06d}"
        meta = {
            "id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
            "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
            "status_details": None,
        }  # fmt: skip
        self.files[file_id] = (meta, data)
        return meta

    async def upload(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or "purpose" not in form:
            message = "multipart fields 'file' and 'purpose' are required"
            return json_response(error_body(message, "invalid_request_error"), 400)
        purpose, data = str(form["purpose"]), upload.file.read()
        if purpose not in FILE_PURPOSES:
            message = f"'{purpose}' is not one of {list(FILE_PURPOSES)} - 'purpose'"
            return json_response(error_body(message, "invalid_request_error"), 400)
        limit = self.server.knobs.batch_max_bytes
        if purpose == "batch" and len(data) > limit:
            message = f"File is too large ({len(data)} bytes): a batch input file may hold at most {limit} bytes."
            return json_response(error_body(message, "invalid_request_error", "file_too_large"), 400)
        return json_response(self.add_file(data, upload.filename, purpose))

    async def file_object(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return not_found("File", file_id)
        return json_response(self.files[file_id][0])

    async def file_content(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return not_found("File", file_id)
        return web.Response(body=self.files[file_id][1], content_type="application/octet-stream")

    async def delete_file(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        file_id = request.match_info["file_id"]
        if self.files.pop(file_id, None) is None:
            return not_found("File", file_id)
        return json_response({"id": file_id, "object": "file", "deleted": True})

    # -- batches ----------------------------------------------------------------------------

    async def create_batch(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        params = await request.json()
        if params.get("input_file_id") not in self.files:
            return not_found("File", str(params.get("input_file_id")))
        purpose = self.files[params["input_file_id"]][0]["purpose"]
        if purpose != "batch":
            message = f"The input file must be uploaded with purpose 'batch', not '{purpose}'."
            return json_response(error_body(message, "invalid_request_error", "invalid_file_purpose"), 400)
        if params.get("endpoint") != CHAT_ENDPOINT or params.get("completion_window") != "24h":
            message = f"this server batches endpoint {CHAT_ENDPOINT!r} with completion_window '24h'"
            return json_response(error_body(message, "invalid_request_error"), 400)
        now = int(time.time())
        batch = {
            "id": f"batch_{len(self.batches) + 1:06d}", "object": "batch", "endpoint": CHAT_ENDPOINT,
            "errors": None, "input_file_id": params["input_file_id"], "completion_window": "24h",
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": params.get("metadata"), "model": None, "usage": None,
        }  # fmt: skip
        self.batches[batch["id"]] = batch
        task = asyncio.create_task(self._run(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return json_response(batch)

    async def batch_object(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        batch_id = request.match_info["batch_id"]
        if batch_id not in self.batches:
            return not_found("Batch", batch_id)
        return json_response(self.batches[batch_id])

    async def list_batches(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        newest_first = list(reversed(self.batches.values()))
        after = request.query.get("after")
        if after in self.batches:
            newest_first = newest_first[newest_first.index(self.batches[after]) + 1 :]
        limit = int(request.query.get("limit", 20))
        page = newest_first[:limit]
        return json_response({
            "object": "list", "data": page,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
            "has_more": len(newest_first) > limit,
        })  # fmt: skip

    async def cancel_batch(self, request: web.Request) -> web.Response:
        if denied := self.server.denied(request):
            return json_response(denied, 401)
        batch_id = request.match_info["batch_id"]
        batch = self.batches.get(batch_id)
        if batch is None:
            return not_found("Batch", batch_id)
        if batch["status"] not in ("validating", "in_progress"):
            message = f"Cannot cancel a batch with status '{batch['status']}'."
            return json_response(error_body(message, "invalid_request_error"), 409)
        batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return json_response(batch)

    async def _half_the_delay(self) -> None:
        started = time.monotonic()
        while time.monotonic() < started + self.server.knobs.batch_delay_s / 2:
            await asyncio.sleep(0.01)

    async def _run(self, batch: dict) -> None:
        knobs = self.server.knobs
        await self._half_the_delay()
        requests, problem = _read_input(self.files[batch["input_file_id"]][1], knobs.batch_max_requests)
        if problem:
            batch["status"], batch["failed_at"] = "failed", int(time.time())
            batch["errors"] = {"object": "list", "data": [{**problem, "param": None}]}
            return
        if batch["status"] == "validating":
            batch["status"], batch["in_progress_at"] = "in_progress", int(time.time())
        batch["request_counts"]["total"] = len(requests)
        batch["model"] = requests[0]["body"].get("model") if requests else None
        await self._half_the_delay()

        if batch["status"] == "cancelling":
            unfinished = set(range(len(requests)))
        elif knobs.batch_expire is True:
            unfinished = set(range(len(requests) // 2, len(requests)))
        else:
            unfinished = set(knobs.batch_expire or ())
        stop_code = "batch_cancelled" if batch["status"] == "cancelling" else "batch_expired"
        outputs, failures, stopped = [], [], []
        for index, request in enumerate(requests):
            line_id = f"{batch['id']}_req_{index}"
            if index in unfinished:
                message = f"This request was not executed ({stop_code})."
                stopped.append({"id": line_id, "custom_id": request["custom_id"], "response": None,
                                "error": {"code": stop_code, "message": message}})  # fmt: skip
                continue
            status, body = self._answer(batch, index, request["body"])
            line = {"id": line_id, "custom_id": request["custom_id"],
                    "response": {"status_code": status, "request_id": f"req_{line_id}", "body": body},
                    "error": None}  # fmt: skip
            (outputs if status == 200 else failures).append(line)
        random.Random(batch["id"]).shuffle(outputs)

        now = int(time.time())
        batch["request_counts"].update(completed=len(outputs), failed=len(failures))
        batch["finalizing_at"] = now
        if outputs:
            batch["output_file_id"] = self._write(f"{batch['id']}_output.jsonl", outputs)["id"]
        if failures or stopped:
            batch["error_file_id"] = self._write(f"{batch['id']}_error.jsonl", failures + stopped)["id"]
        if batch["status"] == "cancelling":
            batch["status"], batch["cancelled_at"] = "cancelled", now
        elif stopped:
            batch["status"], batch["expired_at"] = "expired", now
        else:
            batch["status"], batch["completed_at"] = "completed", now

    def _answer(self, batch: dict, index: int, body: dict) -> tuple[int, dict]:
        knobs = self.server.knobs
        if random.Random(f"{knobs.fault_seed}:{batch['id']}:{index}").random() < knobs.batch_error_rate:
            if knobs.batch_error_status == 400:
                return 400, error_body("Invalid 'max_tokens': integer above maximum value.", "invalid_request_error",
                                       "integer_above_max_value")
            return knobs.batch_error_status, error_body("The server had an error processing this request.",
                                                        "server_error")
        if knobs.raw_reply is not None:  # a hostile endpoint answers its batch lines alike (a body that is JSON)
            return knobs.raw_reply_status, json.loads(knobs.raw_reply)
        digest = hashlib.sha256(canonical(body)).digest()
        return self.server.complete(body, digest, f"chatcmpl-{batch['id']}-{index}")

    def _write(self, filename: str, lines: list[dict]) -> dict:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return self.add_file(data, filename, "batch_output")


def _read_input(data: bytes, max_requests: int) -> tuple[list[dict], dict | None]:
    """(request lines, None) or ([], {code, message, line}) for the first reason the Batch API refuses the file."""
    requests, custom_ids, models = [], set(), set()
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError:
            return [], {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.",
                        "line": number}
        if not isinstance(request, dict) or request.get("method") != "POST" or request.get("url") != CHAT_ENDPOINT \
                or not isinstance(request.get("body"), dict) or not isinstance(request.get("custom_id"), str):
            message = f"Each line needs a string custom_id, method 'POST', url {CHAT_ENDPOINT!r} and a body object."
            return [], {"code": "invalid_request", "message": message, "line": number}
        if request["custom_id"] in custom_ids:
            message = f"The custom_id {request['custom_id']!r} is used by more than one request."
            return [], {"code": "duplicate_custom_id", "message": message, "line": number}
        custom_ids.add(request["custom_id"])
        models.add(request["body"].get("model"))
        if len(models) > 1:
            message = f"A batch input file may use only one model; this line uses {request['body'].get('model')!r}."
            return [], {"code": "mismatched_model", "message": message, "line": number}
        requests.append(request)
    if len(requests) > max_requests:
        message = f"The input file holds {len(requests)} requests; a batch may hold at most {max_requests}."
        return [], {"code": "too_many_requests", "message": message, "line": None}
    return requests, None
