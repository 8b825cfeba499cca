"""What the chat-completions endpoint refuses, as OpenAI refuses it: status and error body.

Checked before any fault or answer, online and for each Batch API line alike: required fields,
unknown parameters (400), unknown models (404 model_not_found), models the key may not use (403),
response formats the endpoint does not take, and the rules of strict `json_schema` (a root object;
every object with `additionalProperties: false` and every property required).
"""

from __future__ import annotations

from typing import Any

from tests.servers.wire import error_body

# Every parameter of POST /v1/chat/completions; anything else is refused, as OpenAI does.
KNOWN_PARAMS = frozenset((
    "model messages audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens "
    "max_tokens metadata modalities n parallel_tool_calls prediction presence_penalty prompt_cache_key "
    "reasoning_effort response_format safety_identifier seed service_tier stop store stream stream_options "
    "temperature tool_choice tools top_logprobs top_p user verbosity web_search_options"
).split())
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")

Refusal = tuple[int, dict]


def refusal(body: Any, knobs) -> Refusal | None:
    """(status, error body) when the endpoint refuses this request, else None."""
    if not isinstance(body, dict):
        return 400, error_body("The request body must be a JSON object.", "invalid_request_error")
    for name in ("model", "messages"):
        if name not in body:
            return 400, error_body(f"Missing required parameter: '{name}'.", "invalid_request_error",
                                   "missing_required_parameter")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages or \
            not all(isinstance(message, dict) and "role" in message for message in messages):
        return 400, error_body("Invalid 'messages': expected a non-empty array of objects with a 'role'.",
                               "invalid_request_error", "invalid_type")
    unknown = sorted(set(body) - KNOWN_PARAMS)
    if unknown:
        return 400, error_body(f"Unrecognized request argument supplied: {unknown[0]}", "invalid_request_error")
    model = body["model"]
    if model not in knobs.models:
        return 404, error_body(f"The model `{model}` does not exist or you do not have access to it.",
                               "invalid_request_error", "model_not_found")
    if model in knobs.forbidden_models:
        return 403, error_body(f"Project `proj_test` does not have access to model `{model}`",
                               "invalid_request_error", "model_not_found")
    fmt = body.get("response_format")
    return None if fmt is None else _format_refusal(fmt, knobs)


def _format_refusal(fmt: Any, knobs) -> Refusal | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in RESPONSE_FORMAT_TYPES:
        return _bad_format(f"Invalid value: {kind!r}. Supported values are: {', '.join(RESPONSE_FORMAT_TYPES)}.")
    # What llama.cpp-style servers answer: a format they do not know is a 400 naming response_format.
    if (kind == "json_schema" and knobs.reject_json_schema) or (kind == "json_object" and knobs.reject_json_object):
        return _bad_format(f"response_format '{kind}' is not supported by this server", "unsupported_response_format")
    if kind != "json_schema":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
        return _bad_format("response_format.json_schema needs a 'name' and a 'schema' object.")
    if spec.get("strict") is True:
        problem = strict_schema_problem(spec["schema"])
        if problem:
            return _bad_format(f"Invalid schema for response_format '{spec['name']}': {problem}", "invalid_json_schema")
    return None


def _bad_format(message: str, code: str | None = None) -> Refusal:
    error = error_body(message, "invalid_request_error", code)
    error["error"]["param"] = "response_format"
    return 400, error


def strict_schema_problem(schema: dict) -> str | None:
    """The first rule of OpenAI's strict structured outputs that `schema` breaks, worded as OpenAI words it."""
    if schema.get("type") != "object":
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."
    return _node_problem(schema, ())


def _node_problem(node: Any, context: tuple) -> str | None:
    if isinstance(node, list):
        for index, item in enumerate(node):
            if problem := _node_problem(item, (*context, index)):
                return problem
        return None
    if not isinstance(node, dict):
        return None
    where = f"In context={context}, "
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return f"{where}'additionalProperties' is required to be supplied and to be false."
        properties = node.get("properties", {})
        missing = [name for name in properties if name not in (node.get("required") or [])]
        if missing:
            return (f"{where}'required' is required to be supplied and to be an array including every key in "
                    f"properties. Missing '{missing[0]}'.")
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions"):
            for name, sub in value.items():
                if problem := _node_problem(sub, (*context, key, name)):
                    return problem
        elif key in ("items", "anyOf", "allOf", "oneOf"):
            if problem := _node_problem(value, (*context, key)):
                return problem
    return None
