"""The server against clients that misbehave at the HTTP level, on raw loopback sockets: slowloris,
trickled and stalled bodies, a huge Content-Length, oversized and too many headers, malformed
requests, clients that leave while their body is read or while they wait, and many that leave
mid-stream. serve.read_timeout_s bounds the headers and the body; every refusal is OpenAI's JSON
error; every count (in-flight requests, KV rows, waiting places) comes back to zero, so the server
keeps serving and a SIGTERM drain of an idle server ends at once. The start-up server, which holds the
port while the model waits for its checkpoint and loads, is held to the same limits and keeps answering
its probes."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshstack.core.contract import ServeConfig
from meshstack.core.observability import SERVE_IN_FLIGHT, SERVE_KV_USAGE, SERVE_QUEUE, SERVE_RUNNING
from meshstack.workloads.jax.http_guard import MAX_HEADER_LINE, MAX_HEADERS
from meshstack.workloads.jax.serve_startup import StartupServer
from meshstack.workloads.jax.serving.launcher import Running, limits, start
from meshstack.workloads.jax.serving.protocol import body_limit
from tests.support.serving import MODEL, client, serve_job

READ_TIMEOUT_S = 1.5
SLACK_S = 15  # what a loaded machine may add to a deadline before the test calls it broken


@pytest.fixture(scope="module")
def server(checkpoint: str) -> Iterator[Running]:
    srv = start(serve_job(checkpoint, read_timeout_s=READ_TIMEOUT_S, max_new_tokens=64), host="127.0.0.1")
    yield srv
    srv.drain()


class Listener(Protocol):
    """The server, or the start-up server that holds its port before it."""

    @property
    def port(self) -> int: ...


def connect(server: Listener) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def read_until_closed(conn: socket.socket, timeout_s: float = 60) -> bytes:
    conn.settimeout(timeout_s)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def error_of(response: bytes) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI's error object of a whole HTTP response."""
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    return status, error


def post_head(length: int | None = None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else ""
    return (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{size}{extra}\r\n").encode()


def in_flight(server: Running) -> dict[str, float]:
    """The engine's own gauges, as /metrics serves them."""
    conn = connect(server)
    conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = read_until_closed(conn).partition(b"\r\n\r\n")[2].decode()
    conn.close()
    wanted = (SERVE_IN_FLIGHT, SERVE_RUNNING, SERVE_QUEUE, SERVE_KV_USAGE)
    return {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples if s.name in wanted}


def settles(server: Running, timeout_s: float = SLACK_S) -> dict[str, float]:
    """The engine's and the HTTP layer's counts once they are all back to zero, or as they stand at the
    deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        engine = server.state.engine
        if (server.state.active == 0 and engine.idle()) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return {"active": server.state.active, **in_flight(server)}


def assert_still_serving(server: Running) -> None:
    answer = client(server).completions.create(model=MODEL, prompt="still", max_tokens=2, temperature=0)
    assert answer.choices[0].finish_reason == "length"


# --- read timeouts --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def startup() -> Iterator[StartupServer]:
    srv = StartupServer("127.0.0.1", 0, limits(ServeConfig(read_timeout_s=READ_TIMEOUT_S)))
    srv.phase = "waiting for the checkpoint"
    yield srv
    srv.close()


@pytest.fixture(params=["server", "start-up server"])
def listener(request: pytest.FixtureRequest) -> Listener:
    """Each test below against the server and against the start-up server before it."""
    fixture = "server" if request.param == "server" else "startup"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def healthz(listener: Listener) -> int:
    """A probe's answer, on a connection of its own (as the kubelet sends it)."""
    conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=SLACK_S)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def assert_still_answering(listener: Listener) -> None:
    assert healthz(listener) == 200
    if isinstance(listener, Running):
        assert_still_serving(listener)


def test_slowloris_connections_are_closed_at_the_read_timeout(listener: Listener) -> None:
    """Headers sent a byte at a time, forever: the deadline counts from the connection, not from the
    last byte, so trickling does not extend it; the probes are answered meanwhile."""
    conns = [connect(listener) for _ in range(40)]
    began = time.monotonic()
    for conn in conns:
        conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    closed: dict[int, float] = {}
    probed = False
    while len(closed) < len(conns) and time.monotonic() - began < READ_TIMEOUT_S + SLACK_S:
        for i, conn in enumerate(conns):
            if i in closed:
                continue
            try:
                conn.sendall(b"X")
            except OSError:
                closed[i] = time.monotonic() - began
        if not probed:
            assert healthz(listener) == 200, "a probe beside the slowloris connections"
            probed = not closed  # answered while all 40 were open
        time.sleep(0.2)
    assert probed, "the probe was answered only once the slowloris connections were closed"
    assert len(closed) == len(conns), f"{len(conns) - len(closed)} of {len(conns)} slowloris connections open"
    status, error = error_of(read_until_closed(conns[0]))
    assert status == 408 and error["code"] == "request_timeout" and "headers" in error["message"]
    assert min(closed.values()) >= READ_TIMEOUT_S * 0.9, "nobody was cut off early"
    for conn in conns:
        conn.close()
    assert_still_answering(listener)


def test_silent_connections_are_closed_at_the_read_timeout(listener: Listener) -> None:
    """Connections that send nothing at all (a port scanner, a client that died after connecting)."""
    conns = [connect(listener) for _ in range(40)]
    began = time.monotonic()
    assert healthz(listener) == 200, "a probe beside the silent connections"
    answers = [read_until_closed(conn, timeout_s=READ_TIMEOUT_S + SLACK_S) for conn in conns]
    took = time.monotonic() - began
    for answer in answers:
        status, error = error_of(answer)
        assert status == 408 and "headers" in error["message"], error
    assert READ_TIMEOUT_S * 0.9 <= took < READ_TIMEOUT_S + SLACK_S
    for conn in conns:
        conn.close()
    assert_still_answering(listener)


def test_the_startup_server_does_not_wait_for_a_body_it_never_reads(startup: StartupServer) -> None:
    """A body stalled or trickled to the start-up server: its 503 does not need the body, and the
    connection closes with it (or at the deadline), never held past it."""
    conn = connect(startup)
    began = time.monotonic()
    conn.sendall(post_head(200) + b'{"model": "chat", ')
    status, error = error_of(read_until_closed(conn, timeout_s=READ_TIMEOUT_S + SLACK_S))
    assert status in (408, 503) and time.monotonic() - began < READ_TIMEOUT_S + SLACK_S, (status, error)
    assert healthz(startup) == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (post_head(2**30), 413),
        (post_head(2, "X-Big: " + "a" * 70_000 + "\r\n") + b"{}", 431),
        (post_head(2, "".join(f"X-{i}: v\r\n" for i in range(2000))) + b"{}", 431),
        (b"GARBAGE\r\n\r\n", 400),
    ],
    ids=["1 GiB Content-Length", "70 KB header line", "2,000 headers", "garbage"],
)
def test_the_startup_server_has_the_servers_size_limits(
    startup: StartupServer, request_bytes: bytes, status: int
) -> None:
    conn = connect(startup)
    with contextlib.suppress(OSError):  # it may close before it has all the headers
        conn.sendall(request_bytes)
    got, error = error_of(read_until_closed(conn))
    assert got == status and error["type"] == "invalid_request_error", (got, error)
    assert healthz(startup) == 200


def test_the_startup_server_hands_its_port_over_while_attacked() -> None:
    """close() with slowloris connections open returns at once and frees the port for the real server."""
    srv = StartupServer("127.0.0.1", 0, limits(ServeConfig(read_timeout_s=60)))
    conns = [connect(srv) for _ in range(10)]
    for conn in conns:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    port, began = srv.port, time.monotonic()
    srv.close()
    assert time.monotonic() - began < SLACK_S
    with socket.create_server(("127.0.0.1", port)):
        pass
    for conn in conns:
        conn.close()


@pytest.mark.parametrize("how", ["stalled", "trickled"])
def test_a_body_that_does_not_arrive_in_time_is_refused_with_408(server: Running, how: str) -> None:
    conn = connect(server)
    began = time.monotonic()
    conn.sendall(post_head(200) + b'{"model": "chat", ')
    if how == "trickled":  # a byte every 0.2 s would finish after 36 s
        conn.settimeout(0.2)
        try:
            while time.monotonic() - began < READ_TIMEOUT_S + SLACK_S:
                conn.sendall(b" ")
                if conn.recv(65536, socket.MSG_PEEK):
                    break
        except (TimeoutError, OSError):
            pass
    response = read_until_closed(conn)
    took = time.monotonic() - began
    status, error = error_of(response)
    assert status == 408 and "body" in error["message"], error
    assert READ_TIMEOUT_S * 0.9 <= took < READ_TIMEOUT_S + SLACK_S
    assert settles(server)["active"] == 0


# --- sizes ----------------------------------------------------------------------------------------


def test_a_huge_content_length_is_refused_before_its_body_is_read(server: Running) -> None:
    conn = connect(server)
    began = time.monotonic()
    conn.sendall(post_head(2**30))  # 1 GiB announced, nothing sent
    status, error = error_of(read_until_closed(conn, timeout_s=READ_TIMEOUT_S * 0.9))
    assert status == 413 and f"the limit is {body_limit(server.state.cfg)}" in error["message"]
    assert time.monotonic() - began < READ_TIMEOUT_S, "answered at once, not at the read timeout"


def test_a_chunked_body_past_the_limit_is_refused_as_it_grows(server: Running) -> None:
    conn = connect(server)
    conn.sendall(post_head(extra="Transfer-Encoding: chunked\r\n"))
    chunk = b"x" * 8192
    sent = 0
    try:
        while sent <= body_limit(server.state.cfg) + len(chunk):
            conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
    except OSError:
        pass  # closed on us, as it should be
    status, error = error_of(read_until_closed(conn))
    assert status == 413 and "the body is over" in error["message"]
    assert settles(server)["active"] == 0


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        ("X-Big: " + "a" * 70_000 + "\r\n", "70 KB header line"),
        ("X-Long: " + "a" * (MAX_HEADER_LINE + 1) + "\r\n", "a line just over the limit"),
        ("".join(f"X-{i}: v\r\n" for i in range(2000)), "2,000 headers"),
        ("".join(f"X-{i}: v\r\n" for i in range(MAX_HEADERS + 1)), "one header too many"),
    ],
    ids=["70 KB line", "line over the limit", "2,000 headers", "one header too many"],
)
def test_oversized_or_too_many_headers_are_refused_with_431(server: Running, headers: str, what: str) -> None:
    conn = connect(server)
    with contextlib.suppress(OSError):  # the server may close before it has all the headers
        conn.sendall(post_head(2, headers) + b"{}")
    status, error = error_of(read_until_closed(conn))
    assert status == 431, f"{what}: {status} {error}"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\n\r\n",  # no Host
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\r\n\r\n",
    ],
    ids=["garbage", "a length in words", "a header without a colon", "no Host", "a space in a name", "TLS"],
)
def test_malformed_http_gets_openais_json_error(server: Running, request_bytes: bytes) -> None:
    conn = connect(server)
    conn.sendall(request_bytes)
    status, error = error_of(read_until_closed(conn))
    assert 400 <= status < 500 and error["type"] == "invalid_request_error", (status, error)
    assert_still_serving(server)


def test_requests_within_the_limits_still_pass_and_keep_alive(server: Running) -> None:
    body = json.dumps({"model": MODEL, "prompt": "ok", "max_tokens": 2}).encode()
    conn = connect(server)
    for _ in range(2):  # two requests on one kept-alive connection
        conn.sendall(post_head(len(body), "X-Fine: " + "a" * 4000 + "\r\n") + body)
        data = b""
        while b'"usage"' not in data:
            data += conn.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 ")
    conn.close()


# --- clients that leave ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_client_gone_while_its_body_is_read_leaks_nothing_and_an_idle_drain_ends_at_once(checkpoint: str) -> None:
    srv = start(serve_job(checkpoint, read_timeout_s=30, drain_timeout_s=20), host="127.0.0.1")
    try:
        for _ in range(5):
            conn = connect(srv)
            conn.sendall(post_head(500) + b'{"model": "chat", "prompt": ')
            time.sleep(0.1)
            conn.close()
        assert settles(srv)["active"] == 0, "every request that was let in has left the count"
        began = time.monotonic()
    finally:
        srv.drain(timeout=60)
    took = time.monotonic() - began
    assert not srv.thread.is_alive()
    assert took < 5, f"an idle server drained in {took:.1f} s (its drain timeout is 20 s)"


def stream_request(max_tokens: int) -> bytes:
    body = json.dumps({"model": MODEL, "prompt": "Leaving", "max_tokens": max_tokens, "stream": True}).encode()
    return post_head(len(body)) + body


def test_many_clients_gone_mid_stream_free_their_rows_and_places_at_once(server: Running) -> None:
    """24 streams on 8 KV rows (so 16 wait): all leave once the first are decoding. The engine's
    gauges are back to zero at once, nothing decodes to max_tokens for nobody, and two well-behaved
    streams running beside them finish whole."""
    engine = server.state.engine
    kept: list[list[Any]] = []

    def stay(i: int) -> None:
        api = client(server)
        kept.append(
            list(api.completions.create(model=MODEL, prompt=f"Staying {i}", max_tokens=24, temperature=0, stream=True))
        )

    stayers = [threading.Thread(target=stay, args=(i,)) for i in range(2)]
    for t in stayers:
        t.start()
    leavers = [connect(server) for _ in range(24)]
    for conn in leavers:
        conn.sendall(stream_request(64))
    first = b""
    deadline = time.monotonic() + SLACK_S
    while b"data: " not in first and time.monotonic() < deadline:
        first += leavers[0].recv(65536)
    before = engine.stats.generated_tokens
    for conn in leavers:
        conn.close()
    left_at = time.monotonic()
    for t in stayers:
        t.join(120)
    counts = settles(server)
    freed_in = time.monotonic() - left_at
    assert counts == {"active": 0, SERVE_IN_FLIGHT: 0, SERVE_RUNNING: 0, SERVE_QUEUE: 0, SERVE_KV_USAGE: 0}
    assert engine.load().waiting == 0 and engine.load().running == 0
    wasted = engine.stats.generated_tokens - before - 2 * 24
    assert wasted < 24 * 64 // 4, f"{wasted} tokens decoded for clients that had left"
    assert freed_in < SLACK_S
    assert len(kept) == 2 and all(c[-1].choices[0].finish_reason == "length" for c in kept)
    assert_still_serving(server)


def test_a_client_gone_while_it_waits_for_a_whole_answer_frees_its_row(server: Running) -> None:
    """Not streamed: the handler waits for the last token and was never told its client left."""
    engine = server.state.engine
    body = json.dumps({"model": MODEL, "prompt": "Waiting", "max_tokens": 64}).encode()
    before = engine.stats.generated_tokens
    conn = connect(server)
    conn.sendall(post_head(len(body)) + body)
    deadline = time.monotonic() + SLACK_S
    while not engine.load().running and time.monotonic() < deadline:
        time.sleep(0.005)
    conn.close()
    assert settles(server)["active"] == 0 and engine.idle()
    assert engine.stats.generated_tokens - before < 64, "generation stopped when the client left, not at max_tokens"
    assert_still_serving(server)
