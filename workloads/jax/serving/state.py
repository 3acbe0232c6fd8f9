"""What every handler shares: the engine, the metrics, the settings, and the counts a SIGTERM drain
waits on; and the mailbox that carries the engine's outputs (from engine_client.py's reader thread)
to the event loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from meshstack.core.contract import ServeConfig
from meshstack.workloads.jax.engine.request import Output
from meshstack.workloads.jax.serving.engine_client import EngineClient
from meshstack.workloads.jax.serving.metrics import Metrics


class Mailbox:
    """Carries the engine's outputs to the event loop: one wake-up of the loop however many
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
    engine: EngineClient
    metrics: Metrics
    cfg: ServeConfig
    model: str
    token: str | None
    draining: bool = False
    active: int = 0  # HTTP requests between arrival and their last byte
    mailbox: Mailbox | None = None

    def busy(self) -> bool:
        """Whether a drain must still wait: a request is open or the engine still works."""
        return self.active > 0 or not self.engine.idle()
