"""The inference server: loads a checkpoint and generates text over HTTP, batching requests that arrive together.

POST /v1/generate {"prompt": str, "max_new_tokens"?: int, "temperature"?: float}
GET  /healthz (alive), /readyz (model loaded, not draining), /metrics (Prometheus)

Requests wait in a bounded queue; one batcher thread takes up to max_batch_size
of them (waiting batch_timeout_ms for company) and runs them as one batch. On
SIGTERM the server stops taking work, finishes what is queued and in flight,
then exits. Run as `python -m workloads.jax.serve` with MESHSTACK_JOB_CONFIG.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jax
import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from meshstack.core.contract import JOB_CONFIG_ENV, SERVE_TOKEN_ENV, ServeConfig, ServeJobConfig
from meshstack.core.input_files import json_nesting
from meshstack.core.observability import (
    SERVE_BATCH,
    SERVE_IN_FLIGHT,
    SERVE_LATENCY,
    SERVE_QUEUE,
    SERVE_TOKENS_PER_SECOND,
)
from workloads.jax import checkpoint, tokenizer
from workloads.jax.events import write_event
from workloads.jax.generate import Generator
from workloads.jax.model import init_params


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Pending:
    prompt: np.ndarray
    max_new_tokens: int
    temperature: float
    queued_at: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    result: list[int] | None = None
    batch_size: int = 0
    error: str | None = None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            SERVE_LATENCY,
            "Time from arrival to answer",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch = Histogram(
            SERVE_BATCH,
            "Requests per forward pass",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self.tokens = Counter("meshstack_generated_tokens", "Tokens generated", registry=self.registry)
        self.tokens_per_s = Gauge(
            SERVE_TOKENS_PER_SECOND, "Tokens per second of the last batch", registry=self.registry
        )
        self.queue = Gauge(SERVE_QUEUE, "Requests waiting for a batch", registry=self.registry)
        # What KEDA scales replicas on (workloads/k8s/inference_service.py): the load a replica holds.
        self.in_flight = Gauge(SERVE_IN_FLIGHT, "Requests accepted and not yet answered", registry=self.registry)
        self.requests = Counter("meshstack_requests", "Requests answered", ["code"], registry=self.registry)


class Engine:
    """The queue and the batcher thread that drains it."""

    def __init__(self, generator: Generator, cfg: ServeConfig, metrics: Metrics) -> None:
        self.generator, self.cfg, self.metrics = generator, cfg, metrics
        self.queue: queue.Queue[Pending] = queue.Queue(maxsize=cfg.max_queue)
        self.draining = threading.Event()
        self.in_flight = 0
        self.lock = threading.Lock()
        metrics.in_flight.set_function(lambda: self.in_flight)
        self.thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self.thread.start()

    def submit(self, pending: Pending) -> None:
        if self.draining.is_set():
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "the server is shutting down")
        with self.lock:
            self.in_flight += 1
        try:
            self.queue.put_nowait(pending)
        except queue.Full:
            with self.lock:
                self.in_flight -= 1
            raise RequestError(HTTPStatus.TOO_MANY_REQUESTS, "the queue is full, retry later") from None
        self.metrics.queue.set(self.queue.qsize())

    def _take_batch(self) -> list[Pending]:
        first = self.queue.get()
        batch = [first]
        deadline = time.perf_counter() + self.cfg.batch_timeout_ms / 1000
        while len(batch) < self.cfg.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                batch.append(self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        seed = 0
        while True:
            batch = self._take_batch()
            self.metrics.queue.set(self.queue.qsize())
            began = time.perf_counter()
            try:
                outputs = self.generator.generate(
                    [p.prompt for p in batch],
                    [p.max_new_tokens for p in batch],
                    [p.temperature for p in batch],
                    seed=seed,
                )
                errors: list[str | None] = [None] * len(batch)
            except Exception as exc:  # one bad batch must not stop the server
                outputs, errors = [[] for _ in batch], [f"generation failed: {exc}"] * len(batch)
            seed += 1
            elapsed = time.perf_counter() - began
            produced = sum(len(o) for o in outputs)
            self.metrics.batch.observe(len(batch))
            self.metrics.tokens.inc(produced)
            self.metrics.tokens_per_s.set(produced / elapsed if elapsed > 0 else 0)
            for pending, output, error in zip(batch, outputs, errors, strict=True):
                pending.result, pending.error, pending.batch_size = output, error, len(batch)
                pending.done.set()
            with self.lock:
                self.in_flight -= len(batch)

    def idle(self) -> bool:
        with self.lock:
            return self.in_flight == 0


TOKEN_ENV = SERVE_TOKEN_ENV  # when set, POSTs need `Authorization: Bearer <it>` (defence in depth)
MAX_JSON_DEPTH = 16
ALLOWED = "GET, POST"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog: the default of 5 resets connections when a few dozen clients arrive at once.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], engine: Engine, metrics: Metrics, token: str | None = None) -> None:
        super().__init__(address, Handler)
        self.engine, self.metrics, self.token = engine, metrics, token
        self.ready = True


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; without TCP_NODELAY the body waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        # Header and body reads give up after the configured time instead of holding a thread forever.
        self.connection.settimeout(self.server.engine.cfg.read_timeout_s)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library answers malformed requests with HTML; meshstack's clients get JSON."""
        self.close_connection = True
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        # A malformed request line parses as HTTP/0.9, which would get no status line at all.
        self.request_version = self.protocol_version
        self._json(status, {"error": message or status.phrase})

    def _refuse_method(self) -> None:
        self.close_connection = True
        body = json.dumps({"error": f"{self.command} is not supported: use {ALLOWED}"}).encode()
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, body, headers={"Allow": ALLOWED})

    # http.server dispatches to do_<METHOD>; those names are its, not ours.
    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = _refuse_method  # noqa: N815

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.metrics.requests.labels(code=str(int(status))).inc()

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode())

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._json(HTTPStatus.OK, {"status": "alive"})
        elif self.path == "/readyz":
            ready = self.server.ready and not self.server.engine.draining.is_set()
            self._json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready})
        elif self.path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        elif self.path == "/v1/generate":
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST for /v1/generate"})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})

    def do_POST(self) -> None:
        began = time.perf_counter()
        try:
            if self.path != "/v1/generate":
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such path {self.path}")
            token = self.server.token
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                raise RequestError(HTTPStatus.UNAUTHORIZED, "send the service's token as 'Authorization: Bearer ...'")
            pending = self._parse()
            self.server.engine.submit(pending)
            pending.done.wait()
            if pending.error is not None:
                raise RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, pending.error)
            latency = time.perf_counter() - began
            self.server.metrics.latency.observe(latency)
            self._json(
                HTTPStatus.OK,
                {
                    "text": tokenizer.decode(pending.result or []),
                    "completion_tokens": len(pending.result or []),
                    "batch_size": pending.batch_size,
                    "latency_ms": round(latency * 1000, 2),
                },
            )
        except RequestError as exc:
            self._json(exc.status, {"error": str(exc)})

    def _parse(self) -> Pending:
        cfg = self.server.engine.cfg
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted: send a Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length header")
        if len(lengths) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 12:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, "Content-Length must be one plain number")
        length = int(lengths[0])
        if length > 4 * cfg.max_prompt_bytes + 1024:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {4 * cfg.max_prompt_bytes + 1024} bytes"
            )
        raw = bytearray()
        try:
            while len(raw) < length and (chunk := self.rfile.read1(length - len(raw))):
                raw += chunk
        except TimeoutError:
            pass  # the client stopped sending: answered below
        if len(raw) < length:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the body ended after {len(raw)} of its {length} bytes (Content-Length is strict)",
            )
        if json_nesting(bytes(raw)) > MAX_JSON_DEPTH:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or not body["prompt"]:
            raise RequestError(HTTPStatus.BAD_REQUEST, "'prompt' must be a non-empty string")
        unknown = set(body) - {"prompt", "max_new_tokens", "temperature"}
        if unknown:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
        max_new = body.get("max_new_tokens", cfg.max_new_tokens)
        if isinstance(max_new, bool) or not isinstance(max_new, int) or not 1 <= max_new <= cfg.max_new_tokens:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"'max_new_tokens' must be an integer from 1 to {cfg.max_new_tokens}"
            )
        temperature = body.get("temperature", 0.0)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 5:
            raise RequestError(HTTPStatus.BAD_REQUEST, "'temperature' must be a number from 0 to 5")
        try:
            prompt = tokenizer.encode(body["prompt"], bos=True)
        except UnicodeEncodeError:
            raise RequestError(HTTPStatus.BAD_REQUEST, "'prompt' is not valid Unicode (a lone surrogate)") from None
        limit = min(cfg.max_prompt_bytes, self.server.engine.generator.max_prompt_tokens())
        if len(prompt) > limit:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the prompt is {len(prompt)} tokens; the limit is {limit}"
            )
        return Pending(prompt=prompt.astype(np.int32), max_new_tokens=max_new, temperature=float(temperature))


def load_generator(job: ServeJobConfig) -> Generator:
    # Whatever mesh the job trained on, the server holds the whole model on its first device.
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
        jax.eval_shape(lambda: init_params(job.model, jax.random.key(0))),
    )
    mngr = checkpoint.manager(job.checkpoint_uri, read_only=True)
    found = checkpoint.restore_latest_good(
        mngr,
        job.checkpoint_uri,
        abstract,
        None,
        lambda step, why: write_event({"event": "checkpoint_damaged", "step": step, "reason": why}),
    )
    mngr.close()
    if found is None:
        raise FileNotFoundError(f"no checkpoint at {job.checkpoint_uri}: train first")
    params = found[1]["params"]
    return Generator(params, job.model, job.serve.max_batch_size, job.serve.max_new_tokens)


def start(job: ServeJobConfig, host: str | None = None) -> tuple[Server, threading.Thread]:
    metrics = Metrics()
    generator = load_generator(job)
    generator.warm_up()
    address = (host or job.serve.bind, job.serve.port)
    token = os.environ.get(TOKEN_ENV) or None
    server = Server(address, Engine(generator, job.serve, metrics), metrics, token)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return server, thread


def drain(server: Server, timeout: float = 60.0) -> None:
    """Refuse new work, wait for what is queued and in flight, then stop serving."""
    server.engine.draining.set()
    deadline = time.monotonic() + timeout
    while not server.engine.idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    server.shutdown()
    server.server_close()


def main() -> int:
    raw = os.environ.get(JOB_CONFIG_ENV)
    if not raw:
        print(f"serve: {JOB_CONFIG_ENV} is not set", file=sys.stderr)
        return 2
    job = ServeJobConfig.model_validate_json(raw)
    try:
        server, thread = start(job)
    except (FileNotFoundError, checkpoint.CheckpointError) as exc:
        # Never ready on weights that cannot be trusted: the pod stays unready and restarts.
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_event({"event": "serving", "port": server.server_address[1]})
    stop.wait()
    drain(server)
    thread.join(timeout=5)
    write_event({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
