"""What a router hands the app: a path, its method, its handler, and whether it is the API (behind
the token, closed while draining) or a probe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request as HttpRequest
from starlette.responses import Response

Handler = Callable[[HttpRequest], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    path: str
    method: str
    handler: Handler
    api: bool = True
