"""The inference server: OpenAI's HTTP API over the continuous-batching engine (workloads/jax/engine.py).

POST /v1/completions, POST /v1/chat/completions (JSON, or server-sent events with "stream": true),
GET /v1/models; GET /healthz (alive), /readyz (model loaded, not draining), /metrics (Prometheus).
While it waits for its checkpoint and loads it, /healthz answers and everything else is 503
(workloads/jax/serve_startup.py).

Starlette on uvicorn: one event loop holds every connection and stream, the engine's thread holds
the accelerator. Errors are OpenAI's shape ({"error": {"message", "type", "param", "code"}}) with
the status a client's retry logic expects: 400 and 413 for a bad request, 401 without the token,
404 for another model, 429 with Retry-After when the KV cache and the waiting line are full, 503
while draining. A client that goes away mid-stream frees its KV row at the next step. On SIGTERM
the server turns unready, answers new requests 503, lets in-flight ones (streams included) finish
within serve.drain_timeout_s, then exits. Run as `python -m meshstack.workloads.jax.serve` with
MESHSTACK_JOB_CONFIG.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshstack.core.contract import JOB_CONFIG_ENV, SERVE_TOKEN_ENV, ServeConfig, ServeJobConfig, tensor_problem
from meshstack.core.input_files import json_nesting
from meshstack.core.observability import (
    SERVE_BATCH,
    SERVE_GENERATED_TOKENS,
    SERVE_IN_FLIGHT,
    SERVE_KV_USAGE,
    SERVE_LATENCY,
    SERVE_PREFIX_HIT_RATIO,
    SERVE_QUEUE,
    SERVE_RUNNING,
    SERVE_TOKENS_PER_SECOND,
    SERVE_TPOT,
    SERVE_TTFT,
)
from meshstack.workloads.jax import checkpoint, model_store
from meshstack.workloads.jax.engine import Engine, EngineDrainingError, EngineFullError, Output, Request, Sampling
from meshstack.workloads.jax.events import write_event
from meshstack.workloads.jax.http_guard import Limits, listener_config
from meshstack.workloads.jax.quantize import quantize_int8
from meshstack.workloads.jax.serve_flow import ClientGoneError, TrackedStream, answer_or_gone
from meshstack.workloads.jax.serve_startup import StartupServer
from meshstack.workloads.jax.tokenization import ChatTemplateError, Tokenizer, render_chat

MAX_JSON_DEPTH = 16
MAX_STOP = 4
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class ApiError(Exception):
    """An OpenAI-style error: its status, type, the parameter at fault and a code a client can test."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None, kind: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=headers)


# --- what a request may hold ---------------------------------------------------------------------


class _Body(BaseModel):
    """Fields OpenAI's API has and this server honours; others are refused by name, never ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    seed: int | None = Field(default=None, ge=0, lt=2**31)
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    user: str | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0


class CompletionBody(_Body):
    prompt: str | list[str]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatBody(_Body):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


def chat_prompt(messages: list[Message]) -> str:
    """The model's chat template: one turn a block, and the assistant's turn opened for it to write."""
    turns = "".join(f"<|{m.role}|>\n{m.content}\n" for m in messages)
    return f"{turns}<|assistant|>\n"


# --- metrics -------------------------------------------------------------------------------------


class Metrics:
    """What LLM serving dashboards chart (names in meshstack.core.observability)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.ttft = Histogram(SERVE_TTFT, "Arrival to first token", registry=r, buckets=LATENCY_BUCKETS)
        self.tpot = Histogram(SERVE_TPOT, "Time per output token after the first", registry=r, buckets=TOKEN_BUCKETS)
        self.latency = Histogram(SERVE_LATENCY, "Arrival to last token", registry=r, buckets=LATENCY_BUCKETS)
        self.batch = Histogram(SERVE_BATCH, "Requests per decode step", registry=r, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.tokens = Counter(SERVE_GENERATED_TOKENS, "Tokens generated", registry=r)
        self.requests = Counter("meshstack_requests", "Requests answered, by HTTP status", ["code"], registry=r)
        self.running = Gauge(SERVE_RUNNING, "Requests holding a KV row", registry=r)
        self.waiting = Gauge(SERVE_QUEUE, "Requests waiting for a KV row", registry=r)
        # What KEDA scales replicas on (workloads/k8s/inference_service.py): the load a replica holds.
        self.in_flight = Gauge(SERVE_IN_FLIGHT, "Requests accepted and not yet answered", registry=r)
        self.kv_usage = Gauge(SERVE_KV_USAGE, "Share of the KV cache's rows in use", registry=r)
        self.prefix_hit = Gauge(SERVE_PREFIX_HIT_RATIO, "Share of requests that reused a cached prefix", registry=r)
        self.prefix_queries = Counter("meshstack_prefix_cache_queries", "Requests looked up", registry=r)
        self.prefix_hits = Counter("meshstack_prefix_cache_hits", "Requests that reused a prefix", registry=r)
        self.prefix_tokens = Counter("meshstack_prefix_cache_tokens", "Prompt tokens not recomputed", registry=r)
        self.tokens_per_s = Gauge(SERVE_TOKENS_PER_SECOND, "Tokens generated per second, last 10 s", registry=r)
        self._recent: list[tuple[float, int]] = []
        self._lock = threading.Lock()

    def observe(self, event: str, value: float) -> None:
        """The engine's hook: called from its thread for each measurement."""
        if event == "ttft":
            self.ttft.observe(value)
        elif event == "tpot":
            self.tpot.observe(value)
        elif event == "e2e":
            self.latency.observe(value)
        elif event == "batch":
            self.batch.observe(value)
        elif event == "prefix_query":
            self.prefix_queries.inc()
        elif event == "prefix_hit":
            self.prefix_hits.inc()
            self.prefix_tokens.inc(value)
        elif event == "tokens":
            self.tokens.inc(value)
            now = time.monotonic()
            with self._lock:
                self._recent.append((now, int(value)))

    def bind(self, engine: Engine) -> None:
        self.running.set_function(lambda: len(engine.running))
        self.waiting.set_function(lambda: engine.waiting.qsize())
        self.in_flight.set_function(lambda: len(engine.running) + engine.waiting.qsize())
        self.kv_usage.set_function(lambda: len(engine.running) / engine.slots)
        self.prefix_hit.set_function(
            lambda: engine.stats.prefix_hits / engine.stats.prefix_queries if engine.stats.prefix_queries else 0.0
        )
        self.tokens_per_s.set_function(self._rate)

    def _rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._recent = [(t, n) for t, n in self._recent if now - t <= 10]
            return sum(n for _, n in self._recent) / 10


# --- the app -------------------------------------------------------------------------------------


class Mailbox:
    """Carries the engine thread's outputs to the event loop: one wake-up of the loop however many
    tokens a decode step produced, not one (and one system call) a token."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[asyncio.Queue[Output], Output]] = []
        self._scheduled = False

    def post(self, queue: asyncio.Queue[Output], output: Output) -> None:
        with self._lock:
            self._items.append((queue, output))
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            items, self._items, self._scheduled = self._items, [], False
        for queue, output in items:
            queue.put_nowait(output)


@dataclass
class State:
    engine: Engine
    metrics: Metrics
    cfg: ServeConfig
    model: str
    max_seq_len: int
    token: str | None
    draining: bool = False
    active: int = 0  # HTTP requests between arrival and their last byte
    mailbox: Mailbox | None = None


def body_limit(cfg: ServeConfig) -> int:
    """The largest request body: a prompt of max_prompt_bytes, JSON-escaped, and the other fields. The
    connection refuses a larger Content-Length before reading it (workloads/jax/http_guard.py)."""
    return 4 * cfg.max_prompt_bytes + 16384


def limits(cfg: ServeConfig) -> Limits:
    """What each connection to the server's port is held to, before and after the model is loaded."""
    return Limits(cfg.read_timeout_s, body_limit(cfg))


def _json_body(raw: bytes, cfg: ServeConfig) -> dict[str, Any]:
    limit = body_limit(cfg)
    if len(raw) > limit:
        raise ApiError(413, f"the body is {len(raw)} bytes; the limit is {limit}", code="request_too_large")
    if json_nesting(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _validated(model: type[_Body], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        message = (
            "unsupported field (this server does not implement it)"
            if first["type"] == "extra_forbidden"
            else first["msg"]
        )
        raise ApiError(400, f"{param}: {message}", param=param) from None


def _sampling(state: State, body: _Body, prompt: list[int], max_tokens: int | None) -> Sampling:
    cfg = state.cfg
    if body.n != 1:
        raise ApiError(400, "n: only n=1 is supported; send several requests instead", param="n")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(body, name) != 0:
            raise ApiError(400, f"{name}: only 0 is supported", param=name)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise ApiError(400, f"stop: at most {MAX_STOP} non-empty strings", param="stop")
    room = state.max_seq_len - len(prompt)
    if room < 1:
        raise ApiError(
            400,
            f"the prompt is {len(prompt)} tokens; this model's context is {state.max_seq_len}",
            param="messages" if isinstance(body, ChatBody) else "prompt",
            code="context_length_exceeded",
        )
    asked = max_tokens or min(cfg.max_new_tokens, room)
    if asked > cfg.max_new_tokens:
        raise ApiError(400, f"max_tokens: at most {cfg.max_new_tokens}", param="max_tokens")
    if asked > room:
        raise ApiError(
            400,
            f"the prompt ({len(prompt)} tokens) and max_tokens ({asked}) exceed this model's context of "
            f"{state.max_seq_len}",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return Sampling(asked, body.temperature, body.top_p, tuple(stop), body.seed)


def _encode(text: str, param: str, cfg: ServeConfig, tok: Tokenizer, special: bool = True) -> list[int]:
    if not text:
        raise ApiError(400, f"{param}: must not be empty", param=param)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{param}: not valid Unicode (a lone surrogate)", param=param) from None
    if len(data) > cfg.max_prompt_bytes:
        raise ApiError(413, f"{param}: {len(data)} bytes; the limit is {cfg.max_prompt_bytes}", param=param)
    return tok.encode(text, special)


def _usage(out: Output) -> dict[str, Any]:
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": out.cached_tokens},
    }


async def _generate(state: State, prompt: list[int], sampling: Sampling) -> tuple[Request, asyncio.Queue[Output]]:
    if state.mailbox is None:
        state.mailbox = Mailbox(asyncio.get_running_loop())
    mailbox = state.mailbox
    outputs: asyncio.Queue[Output] = asyncio.Queue()
    request = Request(prompt, sampling, lambda output: mailbox.post(outputs, output))
    try:
        state.engine.submit(request)
    except EngineFullError as exc:
        raise ApiError(429, f"{exc}: retry shortly", code="rate_limit_exceeded", kind="rate_limit_error") from None
    except EngineDrainingError as exc:
        raise ApiError(503, str(exc), code="shutting_down") from None
    return request, outputs


def make_app(state: State) -> Starlette:
    async def guarded(http: HttpRequest, handler: Callable[[HttpRequest], Any], api: bool = True) -> Response:
        """Every request counts in `active` until its last byte: here for an answer in one piece
        (whatever happens to it), by the stream itself for a stream (workloads/jax/serve_flow.py)."""
        state.active += 1
        response: Response | None = None
        try:
            if api and state.token is not None and http.headers.get("authorization") != f"Bearer {state.token}":
                raise ApiError(
                    401, "send the service's token as 'Authorization: Bearer ...'", kind="authentication_error"
                )
            if api and state.draining:
                raise ApiError(503, "the server is shutting down", code="shutting_down")
            response = await handler(http)
        except ApiError as exc:
            headers = {"Retry-After": "1"} if exc.status == 429 else None
            response = exc.response(headers)
        except (ClientDisconnect, ClientGoneError):
            # Gone while its body was read or its answer made: nobody to answer (499, nginx's count).
            response = Response(status_code=499)
        finally:
            if not isinstance(response, TrackedStream):
                state.active -= 1
        assert response is not None, "set by the handler or an error"
        state.metrics.requests.labels(code=str(response.status_code)).inc()
        return response

    async def completions(http: HttpRequest) -> Response:
        body = _validated(CompletionBody, _json_body(await http.body(), state.cfg))
        texts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(texts) != 1:
            raise ApiError(400, "prompt: send one prompt per request", param="prompt")
        prompt = _encode(texts[0], "prompt", state.cfg, state.engine.tokenizer)
        return await _respond(http, body, prompt, body.max_tokens, chat=False)

    async def chat(http: HttpRequest) -> Response:
        body = _validated(ChatBody, _json_body(await http.body(), state.cfg))
        tok = state.engine.tokenizer
        # The model's own chat template, rendered as transformers renders it (workloads/jax/tokenization.py).
        try:
            text = render_chat(tok, [m.model_dump() for m in body.messages])
        except ChatTemplateError as exc:
            raise ApiError(400, f"messages: {exc}", param="messages") from None
        prompt = _encode(text, "messages", state.cfg, tok, special=tok.chat_adds_special)
        return await _respond(http, body, prompt, body.max_completion_tokens or body.max_tokens, chat=True)

    async def _respond(
        http: HttpRequest, body: _Body, prompt: list[int], max_tokens: int | None, chat: bool
    ) -> Response:
        if body.model != state.model:
            raise ApiError(
                404,
                f"the model '{body.model}' does not exist: this server serves '{state.model}'",
                param="model",
                code="model_not_found",
            )
        sampling = _sampling(state, body, prompt, max_tokens)
        request, outputs = await _generate(state, prompt, sampling)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created = int(time.time())
        if body.stream:
            usage = bool((body.stream_options or {}).get("include_usage"))

            def closed() -> None:
                request.cancelled.set()  # a no-op once finished; frees the row of one that was not
                state.active -= 1

            return TrackedStream(
                _stream(state, request, outputs, ident, created, chat, usage),
                on_close=closed,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        try:
            text, last = await answer_or_gone(outputs, http.receive)
        except BaseException:  # the client left (ClientGoneError), or the server is stopping
            request.cancelled.set()
            raise
        # OpenAI's response schemas require logprobs (null: not computed here) and a message's refusal.
        choice: dict[str, Any] = {"index": 0, "finish_reason": last.finish_reason, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            choice["text"] = text
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": state.model,
                "choices": [choice],
                "usage": _usage(last),
            }
        )

    async def models(http: HttpRequest) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": state.model, "object": "model", "created": 0, "owned_by": "meshstack"}]}
        )

    async def healthz(http: HttpRequest) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(http: HttpRequest) -> Response:
        ready = not state.draining
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def metrics(http: HttpRequest) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def route(path: str, handler: Callable[[HttpRequest], Any], method: str, api: bool = True) -> Route:
        async def endpoint(http: HttpRequest) -> Response:
            return await guarded(http, handler, api)

        return Route(path, endpoint, methods=[method])

    async def not_found(http: HttpRequest, exc: Exception) -> Response:
        return ApiError(404, f"no such path {http.url.path}", code="not_found").response()

    async def not_allowed(http: HttpRequest, exc: Exception) -> Response:
        return ApiError(405, f"{http.method} is not supported on {http.url.path}").response()

    routes = [
        route("/v1/completions", completions, "POST"),
        route("/v1/chat/completions", chat, "POST"),
        route("/v1/models", models, "GET"),
        route("/healthz", healthz, "GET", api=False),
        route("/readyz", readyz, "GET", api=False),
        route("/metrics", metrics, "GET", api=False),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


async def _stream(
    state: State,
    request: Request,
    outputs: asyncio.Queue[Output],
    ident: str,
    created: int,
    chat: bool,
    usage: bool,
) -> AsyncIterator[bytes]:
    """Server-sent events in OpenAI's chunk format, then `data: [DONE]`. A client gone mid-stream
    cancels the request (TrackedStream's on_close): the engine frees its row at its next step."""
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {"id": ident, "object": kind, "created": created, "model": state.model, "choices": choices}
        return f"data: {json.dumps(payload | extra)}\n\n".encode()

    def chunk(delta: str | None, finish: str | None, role: bool = False) -> bytes:
        if chat:
            content: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if delta:
                content["content"] = delta
            choice: dict[str, Any] = {"index": 0, "delta": content, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}
        return event([choice])

    if chat:
        yield chunk(None, None, role=True)
    while True:
        # One event per output, however many are ready: a client counts tokens by events, and each
        # event is its own write (uvicorn sends it at once, TCP_NODELAY), so none waits for the next.
        out = await outputs.get()
        if out.finish_reason is None:
            yield chunk(out.text, None)
            continue
        if out.text:
            yield chunk(out.text, None)
        yield chunk(None, out.finish_reason)
        if usage:
            yield event([], usage=_usage(out))
        yield b"data: [DONE]\n\n"
        return


# --- start-up, drain, main -----------------------------------------------------------------------


def compute_dtype(setting: str) -> jnp.dtype:
    if setting == "auto":
        return jnp.bfloat16 if jax.devices()[0].platform in ("gpu", "tpu", "cuda", "rocm") else jnp.float32
    return jnp.dtype(setting)


def load_params(job: ServeJobConfig) -> Any:
    """The newest trustworthy checkpoint's weights (damaged steps are said and skipped)."""
    return model_store.restore_params(job.checkpoint_uri, job.model)


def load_engine(job: ServeJobConfig, metrics: Metrics) -> Engine:
    """The checkpoint's model (meshstack's own or a Hugging Face folder, workloads/jax/model_store.py), int8
    where asked, sharded over this host's devices (serve.tensor_parallel of them, when given)."""
    declared = job.model if "model" in job.model_fields_set else None  # a stack's; `meshstack serve` gives none
    loaded = model_store.load_served(job.checkpoint_uri, job.model, declared)
    params = loaded.params
    if job.serve.quantization == "int8":
        params = quantize_int8(params)
    serve = job.serve
    devices = jax.local_devices()
    if serve.tensor_parallel is not None:
        if serve.tensor_parallel > len(devices):
            raise ValueError(f"serve.tensor_parallel {serve.tensor_parallel}: this host has {len(devices)} device(s)")
        problem = tensor_problem(loaded.cfg, serve.tensor_parallel, "serve.tensor_parallel")
        if problem is not None:
            raise ValueError(problem[1])
        usable = devices[: serve.tensor_parallel]
    else:
        usable = devices if tensor_problem(loaded.cfg, len(devices), "") is None else devices[:1]
    return Engine(
        params,
        loaded.cfg,
        max_batch=serve.max_batch_size,
        max_waiting=serve.max_queue,
        kv_cache_gib=serve.kv_cache_gib,
        dtype=compute_dtype(serve.compute_dtype),
        prefill_chunk=serve.prefill_chunk,
        prefix_cache=serve.prefix_cache,
        devices=usable,
        observe=metrics.observe,
        tokenizer=loaded.tokenizer,
        max_seq_len=serve.max_seq_len,
    )


class Server(uvicorn.Server):
    """uvicorn whose first SIGTERM drains instead of leaving: unready, new requests 503, in-flight
    ones finish (or drain_timeout_s passes), then it exits."""

    def __init__(self, config: uvicorn.Config, state: State) -> None:
        super().__init__(config)
        self.state = state

    @property
    def port(self) -> int:
        """The port bound once started (the config may ask for 0: any free one)."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.state.draining:
            super().handle_exit(sig, frame)
            return
        self.begin_drain()

    def begin_drain(self) -> None:
        self.state.draining = True
        self.state.engine.draining.set()
        threading.Thread(target=self._drain, name="drain", daemon=True).start()

    def _drain(self) -> None:
        deadline = time.monotonic() + self.state.cfg.drain_timeout_s
        while time.monotonic() < deadline and (self.state.active > 0 or not self.state.engine.idle()):
            time.sleep(0.02)
        self.should_exit = True


@dataclass
class Running:
    """A server started in this process (tests, benchmarks)."""

    server: Server
    thread: threading.Thread
    state: State

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drain(self, timeout: float = 60) -> None:
        self.server.begin_drain()
        self.thread.join(timeout)
        self.state.engine.stop()


def build(job: ServeJobConfig, host: str | None = None) -> tuple[Server, State]:
    metrics = Metrics()
    engine = load_engine(job, metrics)
    engine.warm_up()
    metrics.bind(engine)
    engine.start()
    state = State(engine, metrics, job.serve, job.name, engine.max_seq_len, os.environ.get(SERVE_TOKEN_ENV) or None)
    config = listener_config(
        make_app(state),
        host or job.serve.bind,
        job.serve.port,
        limits(job.serve),
        backlog=256,
        timeout_graceful_shutdown=int(job.serve.drain_timeout_s),
    )
    return Server(config, state), state


def start(job: ServeJobConfig, host: str | None = None) -> Running:
    server, state = build(job, host)
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on port {job.serve.port}")
        time.sleep(0.01)
    return Running(server, thread, state)


def build_when_ready(job: ServeJobConfig, startup: StartupServer) -> tuple[Server, State]:
    """The server, once its checkpoint exists (when the job says to wait for it) and is loaded."""
    while True:
        startup.phase = "loading"
        try:
            return build(job)
        except FileNotFoundError:
            if not job.wait_for_checkpoint:
                raise
        if startup.phase != "waiting for the checkpoint":
            write_event({"event": "waiting", "checkpoint_uri": job.checkpoint_uri})
        startup.phase = "waiting for the checkpoint"
        time.sleep(job.checkpoint_poll_s)


def main() -> int:
    raw = os.environ.get(JOB_CONFIG_ENV)
    if not raw:
        print(f"serve: {JOB_CONFIG_ENV} is not set", file=sys.stderr)
        return 2
    job = ServeJobConfig.model_validate_json(raw)
    startup = StartupServer(job.serve.bind, job.serve.port, limits(job.serve))
    try:
        server, state = build_when_ready(job, startup)
    except (FileNotFoundError, checkpoint.CheckpointError, ValueError) as exc:
        # Never ready on weights that cannot be trusted: the pod stays unready and restarts.
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    finally:
        startup.close()

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.started:
            write_event({"event": "serving", "port": server.port, "model": state.model, "slots": state.engine.slots})

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    state.engine.stop()
    write_event({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
