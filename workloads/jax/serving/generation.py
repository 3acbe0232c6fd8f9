"""The path both generating endpoints share: a checked prompt and sampling, the request handed to the
engine, and its answer in one piece or as OpenAI's server-sent chunks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response

from meshstack.workloads.jax.engine.request import EngineDrainingError, EngineFullError, Output, Sampling
from meshstack.workloads.jax.serve_flow import TrackedStream, answer_or_gone
from meshstack.workloads.jax.serving.engine_client import EngineDiedError, Submitted
from meshstack.workloads.jax.serving.protocol import MAX_STOP, ApiError, ChatBody, GenerationBody, usage
from meshstack.workloads.jax.serving.state import Mailbox, State
from meshstack.workloads.jax.tokenization import Tokenizer


def encode(state: State, text: str, param: str, tok: Tokenizer, special: bool = True) -> list[int]:
    if not text:
        raise ApiError(400, f"{param}: must not be empty", param=param)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{param}: not valid Unicode (a lone surrogate)", param=param) from None
    if len(data) > state.cfg.max_prompt_bytes:
        raise ApiError(413, f"{param}: {len(data)} bytes; the limit is {state.cfg.max_prompt_bytes}", param=param)
    return tok.encode(text, special)


def sampling_of(state: State, body: GenerationBody, prompt: list[int], max_tokens: int | None) -> Sampling:
    cfg, context = state.cfg, state.engine.max_seq_len
    if body.n != 1:
        raise ApiError(400, "n: only n=1 is supported; send several requests instead", param="n")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(body, name) != 0:
            raise ApiError(400, f"{name}: only 0 is supported", param=name)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise ApiError(400, f"stop: at most {MAX_STOP} non-empty strings", param="stop")
    room = context - len(prompt)
    if room < 1:
        raise ApiError(
            400,
            f"the prompt is {len(prompt)} tokens; this model's context is {context}",
            param="messages" if isinstance(body, ChatBody) else "prompt",
            code="context_length_exceeded",
        )
    asked = max_tokens or min(cfg.max_new_tokens, room)
    if asked > cfg.max_new_tokens:
        raise ApiError(400, f"max_tokens: at most {cfg.max_new_tokens}", param="max_tokens")
    if asked > room:
        raise ApiError(
            400,
            f"the prompt ({len(prompt)} tokens) and max_tokens ({asked}) exceed this model's context of {context}",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return Sampling(asked, body.temperature, body.top_p, tuple(stop), body.seed)


def _submit(state: State, prompt: list[int], sampling: Sampling) -> tuple[Submitted, asyncio.Queue[Output]]:
    if state.mailbox is None:
        state.mailbox = Mailbox(asyncio.get_running_loop())
    mailbox = state.mailbox
    outputs: asyncio.Queue[Output] = asyncio.Queue()
    try:
        request = state.engine.submit(prompt, sampling, lambda output: mailbox.post(outputs, output))
    except EngineFullError as exc:
        raise ApiError(429, f"{exc}: retry shortly", code="rate_limit_exceeded", kind="rate_limit_error") from None
    except EngineDrainingError as exc:
        raise ApiError(503, str(exc), code="shutting_down") from None
    except EngineDiedError as exc:
        raise engine_gone(str(exc)) from None
    return request, outputs


def engine_gone(failure: str | None) -> ApiError:
    """The answer to a request whose engine process has died."""
    return ApiError(503, failure or "the engine process has stopped", code="engine_unavailable")


async def respond(
    state: State, http: HttpRequest, body: GenerationBody, prompt: list[int], max_tokens: int | None, chat: bool
) -> Response:
    """The request run on the engine, answered as the body asks (a stream or one JSON answer)."""
    if body.model != state.model:
        raise ApiError(
            404,
            f"the model '{body.model}' does not exist: this server serves '{state.model}'",
            param="model",
            code="model_not_found",
        )
    sampling = sampling_of(state, body, prompt, max_tokens)
    request, outputs = _submit(state, prompt, sampling)
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    chunks = Chunks(ident, int(time.time()), state.model, chat)
    if body.stream:
        with_usage = bool((body.stream_options or {}).get("include_usage"))

        def closed() -> None:
            request.cancel()  # a no-op once finished; frees the row of one that was not
            state.active -= 1

        return TrackedStream(
            _stream(state, chunks, outputs, with_usage),
            on_close=closed,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    try:
        text, last = await answer_or_gone(outputs, http.receive)
    except BaseException:  # the client left (ClientGoneError), or the server is stopping
        request.cancel()
        raise
    if last.finish_reason == "error":
        raise engine_gone(state.engine.failure)
    return JSONResponse(chunks.whole(text, last))


class Chunks:
    """One answer's JSON: whole, or as OpenAI's stream chunks."""

    def __init__(self, ident: str, created: int, model: str, chat: bool) -> None:
        self.ident, self.created, self.model, self.chat = ident, created, model, chat

    def whole(self, text: str, last: Output) -> dict[str, Any]:
        # OpenAI's response schemas require logprobs (null: not computed here) and a message's refusal.
        choice: dict[str, Any] = {"index": 0, "finish_reason": last.finish_reason, "logprobs": None}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            choice["text"] = text
        return {
            "id": self.ident,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage(last),
        }

    def event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        payload = {"id": self.ident, "object": kind, "created": self.created, "model": self.model, "choices": choices}
        return f"data: {json.dumps(payload | extra)}\n\n".encode()

    def delta(self, text: str | None, finish: str | None, role: bool = False) -> bytes:
        if self.chat:
            content: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                content["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": content, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        return self.event([choice])


async def _stream(
    state: State, chunks: Chunks, outputs: asyncio.Queue[Output], with_usage: bool
) -> AsyncIterator[bytes]:
    """Server-sent events in OpenAI's chunk format, then `data: [DONE]`. A client gone mid-stream
    cancels the request (TrackedStream's on_close): the engine frees its row at its next step. A
    stream whose engine died ends with an error event in OpenAI's error shape (as vLLM's do)."""
    if chunks.chat:
        yield chunks.delta(None, None, role=True)
    while True:
        # One event per output, however many are ready: a client counts tokens by events, and each
        # event is its own write (uvicorn sends it at once, TCP_NODELAY), so none waits for the next.
        out = await outputs.get()
        if out.finish_reason is None:
            yield chunks.delta(out.text, None)
            continue
        if out.finish_reason == "error":
            yield f"data: {json.dumps(engine_gone(state.engine.failure).body())}\n\n".encode()
            yield b"data: [DONE]\n\n"
            return
        if out.text:
            yield chunks.delta(out.text, None)
        yield chunks.delta(None, out.finish_reason)
        if with_usage:
            yield chunks.event([], usage=usage(out))
        yield b"data: [DONE]\n\n"
        return
