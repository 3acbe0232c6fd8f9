"""What a client hands the engine and what it hears back: the engine's side of a request (its KV
row, its tokens so far) is the scheduler's own state (scheduler.py), never fields on this."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class EngineFullError(Exception):
    """No row is free and the waiting line is full: the client should retry later."""


class EngineDrainingError(Exception):
    """The server is shutting down and takes no new work."""


@dataclass(frozen=True)
class Sampling:
    """How a request's tokens are chosen and when it ends."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Output:
    """What a request's sink hears: text as it is decided, then once `finish_reason` is set, the end
    (with the completion's token ids, for callers that check them against the model)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    token_ids: tuple[int, ...] = ()


@dataclass(eq=False)
class Request:
    """A prompt to complete; `sink` hears its outputs from the thread that steps the engine,
    `cancelled` (set by the client) frees its row at the engine's next step."""

    prompt: list[int]
    sampling: Sampling
    sink: Callable[[Output], None]
    arrived: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)
