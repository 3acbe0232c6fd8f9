"""How a request's life on the server ends, whatever its client does: it reads the answer, leaves
while its body is read, leaves while the engine works on it, or leaves mid-stream.

Two counts must come back down each time, or the server degrades for good: the HTTP requests in
flight (State.active, which a SIGTERM drain waits on: one leaked count makes every later drain wait
its whole timeout) and the engine's KV rows and batch places (a request nobody reads still holds
its row and decodes to max_tokens). Starlette leaves both to the app: a client gone during the body
read raises ClientDisconnect out of the handler, a non-streaming handler is never told its client
left, and a stream whose client left before its first chunk never runs its generator's `finally`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from meshstack.workloads.jax.engine.request import Output


class ClientGoneError(Exception):
    """The client closed its connection before its answer was ready: nobody is left to answer."""


class TrackedStream(StreamingResponse):
    """A streamed answer whose `on_close` runs exactly once when the response ends, however it ends:
    its last event sent, the client gone mid-stream, or the client gone before the first chunk."""

    def __init__(self, content: Any, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._on_close: Callable[[], None] | None = on_close

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.close()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (call it once the body has been read: uvicorn then answers
    receive() only with the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _last(outputs: asyncio.Queue[Output]) -> tuple[str, Output]:
    text = ""
    while True:
        out = await outputs.get()
        text += out.text
        if out.finish_reason is not None:
            return text, out


async def answer_or_gone(outputs: asyncio.Queue[Output], receive: Receive) -> tuple[str, Output]:
    """The whole text and the final output of a request answered in one piece; ClientGoneError as soon as
    its client leaves, so the caller cancels the request and its KV row is free at the engine's next
    step instead of after max_tokens."""
    answer = asyncio.ensure_future(_last(outputs))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        raise ClientGoneError
    finally:
        for task in (answer, gone):
            task.cancel()
