"""The server fuzzed with schemathesis against OpenAI's own OpenAPI document: the operations meshstack
serves (POST /v1/completions, POST /v1/chat/completions, GET /v1/models), cut from
github.com/openai/openai-openapi at the commit tests/fixtures/openai/openapi-subset.json names
(tests/fixtures/openai/extract.py made it). Requests are generated from OpenAI's request schemas
and sent over loopback to a server started in this process: no 5xx, no hang (each call has a
timeout), every 4xx OpenAI's error object, every 2xx valid against OpenAI's response schema,
streamed ones event by event.

Most generated requests use fields this server refuses by name (logit_bias, tools, audio...) or
another model, so they test the refusals; the valid ones below test the answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from meshstack.workloads.jax.serving.launcher import Running, start
from tests.conftest import FIXTURES
from tests.support.serving import MODEL, serve_job

SUBSET = FIXTURES / "openai" / "openapi-subset.json"
DOCUMENT = json.loads(SUBSET.read_text())
schema = schemathesis.openapi.from_path(SUBSET)
CALL_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def server(checkpoint: str) -> Iterator[Running]:
    srv = start(serve_job(checkpoint, read_timeout_s=5), host="127.0.0.1")
    yield srv
    srv.drain()


def test_the_document_is_openais_at_a_known_commit() -> None:
    source = DOCUMENT["info"]["x-meshstack-source"]
    assert source["repository"] == "openai/openai-openapi" and len(source["commit"]) == 40
    assert {path: list(ops) for path, ops in DOCUMENT["paths"].items()} == {
        "/completions": ["post"],
        "/chat/completions": ["post"],
        "/models": ["get"],
    }


def resolved(node: Any) -> Any:
    """A schema of the document as plain JSON Schema: $refs inlined (jsonschema does not know the file)
    and OpenAPI's `nullable: true`, which the document still uses in places, as a null alternative."""
    if isinstance(node, dict):
        if "$ref" in node:
            _, _, kind, name = node["$ref"].split("/", 3)
            return resolved(DOCUMENT["components"][kind][name])
        out = {k: resolved(v) for k, v in node.items() if k != "nullable"}
        return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out
    if isinstance(node, list):
        return [resolved(v) for v in node]
    return node


def completion_chunk() -> Any:
    """OpenAI streams completions as CreateCompletionResponse objects (its document lists no stream
    type), whose finish_reason is null until the last: the one change made to OpenAI's schema."""
    chunk = resolved({"$ref": "#/components/schemas/CreateCompletionResponse"})
    choice = chunk["properties"]["choices"]["items"]["properties"]
    choice["finish_reason"] = {"anyOf": [choice["finish_reason"], {"type": "null"}]}
    return chunk


STREAM_SCHEMAS = {
    "/chat/completions": resolved({"$ref": "#/components/schemas/CreateChatCompletionStreamResponse"}),
    "/completions": completion_chunk(),
}


def content_type(response: Any) -> str:
    value = response.headers.get("content-type") or response.headers.get("Content-Type") or ""
    return str(value[0] if isinstance(value, list) else value)


def assert_openai_error(response: Any) -> None:
    assert content_type(response).startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)


def assert_valid_stream(path: str, response: Any) -> None:
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert events and events[-1] == "[DONE]", response.text[-200:]
    for event in events[:-1]:
        jsonschema.validate(json.loads(event), STREAM_SCHEMAS[path])


def check(case: Any, response: Any) -> None:
    """What every answer must be, whatever was asked."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if 400 <= response.status_code < 500:
        assert_openai_error(response)
    elif content_type(response).startswith("text/event-stream"):
        assert_valid_stream(case.path, response)
    else:
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_generated_requests_get_documented_answers(case: Any, server: Running) -> None:
    response = case.call(base_url=f"{server.url}/v1", timeout=CALL_TIMEOUT_S)
    check(case, response)


VALID: list[tuple[str, str, dict[str, Any] | None]] = [
    ("/models", "GET", None),
    ("/completions", "POST", {"model": MODEL, "prompt": "The", "max_tokens": 4, "temperature": 0}),
    ("/completions", "POST", {"model": MODEL, "prompt": ["A"], "max_tokens": 3, "stop": ["\n"], "seed": 1}),
    ("/completions", "POST", {"model": MODEL, "prompt": "S", "max_tokens": 4, "stream": True}),
    (
        "/completions",
        "POST",
        {"model": MODEL, "prompt": "U", "max_tokens": 2, "stream": True, "stream_options": {"include_usage": True}},
    ),
    ("/chat/completions", "POST", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
    (
        "/chat/completions",
        "POST",
        {
            "model": MODEL,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "max_completion_tokens": 3,
            "top_p": 0.5,
            "stream": True,
        },
    ),
]


@pytest.mark.parametrize(("path", "method", "body"), VALID)
def test_valid_requests_get_answers_valid_against_openais_response_schemas(
    server: Running, path: str, method: str, body: dict[str, Any] | None
) -> None:
    operation = schema[path][method]
    case = operation.Case(body=body) if body is not None else operation.Case()
    response = case.call(base_url=f"{server.url}/v1", timeout=CALL_TIMEOUT_S)
    assert response.status_code == 200, response.text
    check(case, response)
