"""The server's HTTP/1.1 connections held to limits before any request reaches the app: how long a
client may take to send its headers and its body, how large they may be, and OpenAI's JSON error for
whatever is refused (uvicorn's own refusals are plain text).

uvicorn (0.55, h11) has none of this: its only timer is the keep-alive one, which every byte
received resets, so a client that sends a byte a second (slowloris), or headers and then nothing,
holds its connection for ever; h11 caps only an *incomplete* header block (16 KiB), so a 70 KB
header line or 2,000 headers that arrive at once are accepted; and a body is read into memory
whatever its Content-Length says, before the app can refuse it. The protocol below is uvicorn's,
with h11's connection wrapped to check each event as it is parsed:

- the headers must be complete within `read_timeout_s` of the connection opening (or of the
  previous response on a kept-alive one), and the body within `read_timeout_s` of the headers:
  deadlines, not idle timers, so trickling does not extend them; then 408 and the connection closes;
- at most MAX_HEADERS header lines, none over MAX_HEADER_LINE bytes, MAX_HEADER_BYTES in all (431);
- a Content-Length over `max_body_bytes` is refused with 413 before a byte of the body is read,
  and a chunked body as soon as it grows past it;
- malformed HTTP gets 400 (h11's hint where it has one) in OpenAI's error shape.

Every refusal closes the connection: what the client sends after it is not read. Both of the
server's listeners run with these limits (`listener_config`): the real one, and the start-up one
that answers /healthz while the model waits for its checkpoint and loads (serve_startup.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

MAX_HEADERS = 100  # Apache's LimitRequestFields; OpenAI's clients send about 15
MAX_HEADER_LINE = 8192  # Apache's LimitRequestFieldSize, nginx's large_client_header_buffers
MAX_HEADER_BYTES = 16384  # the request line and every header together


@dataclass(frozen=True)
class Limits:
    read_timeout_s: float
    max_body_bytes: int


class Refused(h11.RemoteProtocolError):
    """A request refused by these limits: uvicorn treats it as the malformed HTTP it sends 400 for,
    and BoundedProtocol answers with this status instead."""


def error_response(status: int, message: str, code: str | None = None) -> bytes:
    """A whole HTTP/1.1 response carrying OpenAI's error object, closing the connection."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _CheckedConnection(h11.Connection):
    """h11's connection, checking each event it parses against the limits and telling the protocol
    where a request stands (headers in, body done) so its deadlines follow."""

    def __init__(self, protocol: BoundedProtocol) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.protocol = protocol
        self.body_bytes = 0

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.protocol.protocol_error = exc  # uvicorn's send_400_response is told only a fixed text
            raise
        if isinstance(event, h11.Request):
            self.body_bytes = 0
            try:
                _check_head(event, self.protocol.limits)
            except Refused as exc:
                self.protocol.protocol_error = exc
                raise
            self.protocol.headers_done()
        elif isinstance(event, h11.Data):
            self.body_bytes += len(event.data)
            limit = self.protocol.limits.max_body_bytes
            if self.body_bytes > limit:
                self.protocol.protocol_error = Refused(f"the body is over {limit} bytes", error_status_hint=413)
                raise self.protocol.protocol_error
        elif isinstance(event, h11.EndOfMessage):
            self.protocol.body_done()
        return event


def _check_head(event: h11.Request, limits: Limits) -> None:
    total = len(event.method) + len(event.target) + 12
    if len(event.headers) > MAX_HEADERS:
        raise Refused(f"{len(event.headers)} header lines; the limit is {MAX_HEADERS}", error_status_hint=431)
    length = None
    for name, value in event.headers:
        line = len(name) + len(value) + 4
        if line > MAX_HEADER_LINE:
            raise Refused(
                f"the header {name.decode('latin-1')[:64]} is {line} bytes; the limit is {MAX_HEADER_LINE}",
                error_status_hint=431,
            )
        total += line
        if name == b"content-length":
            length = int(value)  # h11 has checked it is a number
    if total > MAX_HEADER_BYTES:
        raise Refused(f"the headers are {total} bytes; the limit is {MAX_HEADER_BYTES}", error_status_hint=431)
    if length is not None and length > limits.max_body_bytes:
        raise Refused(f"the body is {length} bytes; the limit is {limits.max_body_bytes}", error_status_hint=413)


class BoundedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the limits above; `bounded(limits)` makes the class uvicorn
    instantiates for each connection."""

    limits: Limits

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _CheckedConnection(self)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = "headers"  # what the connection waits for: "headers", "body", or the app ("app")
        self.protocol_error: h11.RemoteProtocolError | None = None

    # --- deadlines -------------------------------------------------------------------------------

    def _arm(self, waiting_for: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.read_timeout_s, self._expired, waiting_for)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, waiting_for: str) -> None:
        self._deadline = None
        message = f"the request's {waiting_for} did not arrive within {self.limits.read_timeout_s:g} s"
        self._refuse(408, message, "request_timeout")

    def headers_done(self) -> None:
        self._phase = "body"
        self._arm("body")

    def body_done(self) -> None:
        if self.cycle is not None and self.cycle.response_complete:
            self._next_request()  # answered before its body was in (a 401, say): the next one's turn
        else:
            self._phase = "app"
            self._disarm()

    def _next_request(self) -> None:
        self._phase = "headers"
        self._arm("headers")  # on a kept-alive connection, the next request's headers have as long

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._next_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        if self._phase == "app" and not self.transport.is_closing():
            self._next_request()
        super().on_response_complete()

    # --- refusals --------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused already: nothing more is read
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a protocol error (h11's, or a Refused), in OpenAI's shape, with the
        status h11 hints at (431 for a header block too large) or the limit's."""
        exc, self.protocol_error = self.protocol_error, None
        status = int(exc.error_status_hint) if exc is not None else 400
        message = str(exc) if isinstance(exc, Refused) else f"malformed HTTP request: {exc or msg}"
        self._refuse(status if status in (400, 413, 431) else 400, message, None)

    def _refuse(self, status: int, message: str, code: str | None) -> None:
        """Answer with the error unless a response has begun, then close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        if self._phase == "headers":
            self.transport.write(error_response(status, message, code))
        elif self.cycle is not None:
            if not self.cycle.response_started:
                self.transport.write(error_response(status, message, code))
            # The app, waiting for the body, hears that the client left; what it sends is dropped.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


def bounded(limits: Limits) -> type[BoundedProtocol]:
    """The protocol class for uvicorn.Config(http=...), held to `limits`."""
    return type("BoundedProtocol", (BoundedProtocol,), {"limits": limits})


def listener_config(app: Any, host: str, port: int, limits: Limits, **extra: Any) -> Config:
    """uvicorn's config for a listener of the server's port, its connections held to `limits`: quiet
    (the server writes its own events), no lifespan, a kept-alive connection idle no longer than a
    request may take to arrive."""
    return Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        interface="asgi3",  # said, not guessed: uvicorn takes a bound method for ASGI 2
        timeout_keep_alive=max(int(limits.read_timeout_s), 1),
        http=bounded(limits),
        **extra,
    )
