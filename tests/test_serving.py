"""The inference server on loopback: answers from a trained checkpoint, batches, refuses bad requests, drains."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshstack.core.contract import JobConfig, ServeConfig, ServeJobConfig
from workloads.jax.data import ensure_corpus
from workloads.jax.serve import TOKEN_ENV, Engine, Metrics, Pending, RequestError, Server, drain, start
from workloads.jax.train import run
from workloads.k8s.inference_service import IN_FLIGHT_METRIC
from workloads.local import LocalServer, free_port


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("serve")
    data, ckpt = (root / "data").as_uri(), (root / "ckpt").as_uri()
    ensure_corpus(data)
    run(
        JobConfig(
            name="t",
            data_uri=data,
            checkpoint_uri=ckpt,
            train={"steps": 60, "global_batch": 8, "checkpoint_every": 60, "log_every": 60},
        )
    )
    return ckpt


def serve_job(checkpoint: str, **serve: Any) -> ServeJobConfig:
    return ServeJobConfig(
        name="chat",
        checkpoint_uri=checkpoint,
        serve={"port": free_port(), "max_new_tokens": 16, "batch_timeout_ms": 50, **serve},
    )


@pytest.fixture(scope="module")
def server(checkpoint: str) -> Iterator[Server]:
    srv, _ = start(serve_job(checkpoint, read_timeout_s=2), host="127.0.0.1")
    yield srv
    drain(srv)


def call(
    server: Server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any] | str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    raw = response.read().decode()
    conn.close()
    try:
        return response.status, json.loads(raw)
    except json.JSONDecodeError:
        return response.status, raw


def generate(server: Server, payload: dict[str, Any]) -> tuple[int, Any]:
    return call(server, "POST", "/v1/generate", json.dumps(payload).encode(), {"Content-Type": "application/json"})


@pytest.mark.slow
def test_answers_from_the_trained_checkpoint(server: Server) -> None:
    status, body = generate(server, {"prompt": "The module", "max_new_tokens": 12})
    assert status == 200
    assert body["completion_tokens"] == 12 and len(body["text"]) > 0
    assert call(server, "GET", "/healthz")[0] == 200
    assert call(server, "GET", "/readyz") == (200, {"ready": True})


@pytest.mark.slow
def test_concurrent_requests_share_a_forward_pass(server: Server) -> None:
    results: list[tuple[int, Any]] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(generate(server, {"prompt": f"Return {i}"})))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status == 200 for status, _ in results)
    assert max(body["batch_size"] for _, body in results) > 1
    metrics = call(server, "GET", "/metrics")[1]
    assert "meshstack_batch_size_bucket" in metrics and "meshstack_request_latency_seconds_count" in metrics
    assert "meshstack_generated_tokens_total" in metrics
    # The gauge the stack's KEDA ScaledObject queries is served, and is back to 0 once all are answered.
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert families[IN_FLIGHT_METRIC].type == "gauge"
    assert families[IN_FLIGHT_METRIC].samples[0].value == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "text"),
    [
        ("POST", "/v1/generate", b"{not json", {}, 400, "not valid JSON"),
        ("POST", "/v1/generate", b'{"text": "hi"}', {}, 400, "'prompt' must be a non-empty string"),
        ("POST", "/v1/generate", b'{"prompt": "hi", "stream": true}', {}, 400, "unknown fields: stream"),
        ("POST", "/v1/generate", b'{"prompt": "hi", "max_new_tokens": 500}', {}, 400, "from 1 to 16"),
        ("POST", "/v1/generate", b'{"prompt": "hi", "temperature": "hot"}', {}, 400, "'temperature'"),
        ("POST", "/v1/generate", json.dumps({"prompt": "x" * 200}).encode(), {}, 413, "the limit is 112"),
        ("POST", "/v1/generate", b"x" * 20000, {}, 413, "the body is over"),
        ("GET", "/v1/generate", None, {}, 405, "use POST"),
        ("GET", "/nope", None, {}, 404, "no such path"),
        ("PUT", "/v1/generate", b"{}", {}, 405, "PUT is not supported: use GET, POST"),
        ("DELETE", "/v1/generate", None, {}, 405, "DELETE is not supported"),
        ("OPTIONS", "/", None, {}, 405, "OPTIONS is not supported"),
        ("POST", "/v1/generate", b'{"prompt": "\\ud800 alone"}', {}, 400, "not valid Unicode (a lone surrogate)"),
        ("POST", "/v1/generate", b"[" * 5000 + b"]" * 5000, {}, 400, "nests deeper than 16 levels"),
        ("POST", "/v1/generate", b'{"prompt": "hi"}', {"Content-Length": "1e3"}, 400, "one plain number"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(
    server: Server, method: str, path: str, body: bytes | None, headers: dict[str, str], status: int, text: str
) -> None:
    got, answer = call(server, method, path, body, headers)
    assert got == status
    assert text in answer["error"]
    assert generate(server, {"prompt": "still there?", "max_new_tokens": 2})[0] == 200


@pytest.mark.slow
def test_request_without_length_is_refused(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    conn.putrequest("POST", "/v1/generate")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 411
    conn.close()


@pytest.mark.slow
def test_shutdown_drains_in_flight_requests(checkpoint: str) -> None:
    server, _ = start(serve_job(checkpoint), host="127.0.0.1")
    results: list[tuple[int, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(generate(server, {"prompt": "Drain"}))) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while server.engine.in_flight < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    drain(server)
    for t in threads:
        t.join()
    assert [status for status, _ in results] == [200] * 4
    with pytest.raises(ConnectionRefusedError):
        call(server, "GET", "/healthz")


class Blocked:
    """A generator that holds its batch until released, to fill the queue deterministically."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def generate(
        self, prompts: list[Any], max_new: list[int], temperature: list[float], seed: int = 0
    ) -> list[list[int]]:
        self.release.wait(timeout=30)
        return [[65] for _ in prompts]


def test_full_queue_refuses_with_429_and_draining_with_503() -> None:
    blocked = Blocked()
    engine = Engine(blocked, ServeConfig(max_batch_size=1, max_queue=1, batch_timeout_ms=0), Metrics())  # type: ignore[arg-type]
    first, second, third = (Pending(prompt=np.array([65]), max_new_tokens=1, temperature=0.0) for _ in range(3))
    engine.submit(first)
    while engine.queue.qsize():
        time.sleep(0.001)
    engine.submit(second)
    with pytest.raises(RequestError) as info:
        engine.submit(third)
    assert info.value.status == 429
    engine.draining.set()
    with pytest.raises(RequestError) as info:
        engine.submit(third)
    assert info.value.status == 503
    blocked.release.set()
    assert first.done.wait(10) and second.done.wait(10)
    assert first.result == [65] and engine.idle()


@pytest.mark.slow
def test_server_process_stops_cleanly_on_sigterm(checkpoint: str, tmp_path: Path) -> None:
    local = LocalServer(serve_job(checkpoint), tmp_path)
    conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=60)
    conn.request("POST", "/v1/generate", body=json.dumps({"prompt": "Hi", "max_new_tokens": 3}))
    assert conn.getresponse().status == 200
    conn.close()
    local.stop()
    assert local.group.returncodes() == [0]


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from workloads.local import LocalRunError

    with pytest.raises(LocalRunError, match="no checkpoint at"):
        LocalServer(serve_job((tmp_path / "none").as_uri()), tmp_path)


def test_decoding_with_a_cache_needs_the_mask_of_real_slots() -> None:
    import jax
    import jax.numpy as jnp

    from meshstack.core.contract import ModelConfig
    from workloads.jax.model import empty_cache, forward, init_params

    cfg = ModelConfig()
    params = init_params(cfg, jax.random.PRNGKey(0))
    tokens = jnp.zeros((1, 2), jnp.int32)
    with pytest.raises(ValueError, match="needs key_valid"):
        forward(params, tokens, jnp.arange(2)[None], cfg, cache=empty_cache(cfg, 1, 8, jnp.float32))


def raw_exchange(server: Server, request: bytes, wait: float = 10.0) -> bytes:
    """Send bytes as they are and read whatever comes back until the server closes or `wait` passes."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=wait) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pytest.fail(f"no answer and no close within {wait} s to {request[:40]!r}")
        return b"".join(chunks)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_bytes", "status", "text"),
    [
        (
            b"POST /v1/generate HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b'{"prompt": "hi"}',
            408,
            "ended after 16 of its 100",
        ),
        (
            b"POST /v1/generate HTTP/1.1\r\nContent-Length: 16\r\nContent-Length: 16\r\n\r\n" + b'{"prompt": "hi"}',
            400,
            "one plain number",
        ),
        (b"POST /v1/generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "chunked bodies"),
        (b"HELLO THERE\r\n\r\n", 400, "Bad HTTP/0.9 request type"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, ""),
    ],
)
def test_malformed_http_gets_a_json_answer_never_a_hang(
    server: Server, request_bytes: bytes, status: int, text: str
) -> None:
    answer = raw_exchange(server, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()) or head.startswith(f"HTTP/1.0 {status} ".encode()), head
    assert b"application/json" in head and text in json.loads(body)["error"]
    assert call(server, "GET", "/healthz")[0] == 200


@pytest.mark.slow
def test_http_0_9_and_silence_are_closed_not_held(server: Server) -> None:
    raw_exchange(server, b"GET /healthz\r\n")
    raw_exchange(server, b"")  # a client that connects and says nothing is let go after the read timeout
    assert call(server, "GET", "/healthz")[0] == 200


@pytest.mark.slow
def test_64_clients_at_once_are_all_answered(server: Server) -> None:
    start_line = threading.Barrier(64)
    results: list[int] = []

    def client() -> None:
        start_line.wait()
        results.append(call(server, "GET", "/healthz")[0])

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 64


@pytest.mark.slow
def test_a_token_guards_generation_but_not_the_probes(checkpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    guarded, _ = start(serve_job(checkpoint), host="127.0.0.1")
    try:
        assert generate(guarded, {"prompt": "hi", "max_new_tokens": 2})[0] == 401
        body = json.dumps({"prompt": "hi", "max_new_tokens": 2}).encode()
        assert call(guarded, "POST", "/v1/generate", body, {"Authorization": "Bearer s3cret"})[0] == 200
        assert call(guarded, "POST", "/v1/generate", body, {"Authorization": "Bearer nope"})[0] == 401
        assert call(guarded, "GET", "/readyz")[0] == 200
    finally:
        drain(guarded)
