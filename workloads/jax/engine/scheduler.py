"""Who runs next: admission into free KV rows, the waiting line, and each step's batch.

A request that arrives to an idle engine starts at once; one that finishes leaves the batch at the
next step; nothing waits for a batch to fill. Each step runs at most one prefill chunk (so a long
prompt never stalls the others' decoding for long), then one decode step for every request that is
decoding. The engine's view of a request (its row, its tokens) lives here, in `Sequence`, owned by
the scheduler alone."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from meshstack.workloads.jax.engine.detokenizer import Detokenizer
from meshstack.workloads.jax.engine.kv_slots import KVSlots, Placement
from meshstack.workloads.jax.engine.request import EngineDrainingError, EngineFullError, Request
from meshstack.workloads.jax.engine.steps import RowSampling


def check_admission(outstanding: int, slots: int, max_waiting: int, draining: bool) -> None:
    """Refuse a new request the engine has no room or time for: while draining, or when every row is
    taken and the waiting line is full (`outstanding`: requests accepted and not yet finished). The
    server checks it itself before a request crosses to the engine's process (its count is exact:
    it hears every finish)."""
    if draining:
        raise EngineDrainingError("the server is shutting down")
    if outstanding >= slots + max_waiting:
        raise EngineFullError("every KV row is taken and the waiting line is full")


@dataclass(eq=False)
class Sequence:
    """A request as the engine runs it: its row, how much of its prompt is in the row, its tokens."""

    request: Request
    seed: int
    text: Detokenizer
    slot: int = -1
    prefilled: int = 0
    cached_tokens: int = 0
    generated: list[int] = field(default_factory=list)
    first_token_at: float | None = None

    @property
    def decoding(self) -> bool:
        return self.prefilled >= len(self.request.prompt) and self.first_token_at is not None

    @property
    def position(self) -> int:
        """Where its last token goes in its row."""
        return len(self.request.prompt) + len(self.generated) - 1

    def sampling(self) -> RowSampling:
        s = self.request.sampling
        return RowSampling(s.temperature, s.top_p, self.seed, len(self.generated))


class Scheduler:
    def __init__(self, slots: KVSlots, max_waiting: int) -> None:
        self.slots, self.max_waiting = slots, max_waiting
        self.waiting: queue.Queue[Sequence] = queue.Queue()
        self.running: list[Sequence] = []
        self.draining = threading.Event()
        self._seeds = np.random.default_rng()

    def enqueue(self, request: Request, text: Detokenizer) -> None:
        """Queue a request, or refuse it (nothing queued)."""
        check_admission(
            len(self.running) + self.waiting.qsize(), self.slots.slots, self.max_waiting, self.draining.is_set()
        )
        seed = request.sampling.seed if request.sampling.seed is not None else int(self._seeds.integers(2**31))
        self.waiting.put(Sequence(request, seed, text))

    def idle(self) -> bool:
        return not self.running and self.waiting.empty()

    def cancelled(self) -> list[Sequence]:
        return [s for s in self.running if s.request.cancelled.is_set()]

    def admit(self) -> tuple[list[tuple[Sequence, Placement]], list[Sequence]]:
        """Waiting requests into free rows, in arrival order; and the ones cancelled while they waited,
        dropped without a row (they must still be told they are finished)."""
        admitted, dropped = [], []
        while len(self.running) < self.slots.slots and not self.waiting.empty():
            seq = self.waiting.get()
            if seq.request.cancelled.is_set():
                dropped.append(seq)
                continue
            placement = self.slots.take(seq.request.prompt)
            seq.slot, seq.prefilled = placement.slot, placement.reused
            seq.cached_tokens = placement.reused
            self.running.append(seq)
            admitted.append((seq, placement))
        return admitted, dropped

    def next_prefill(self) -> Sequence | None:
        """The one request whose prompt gets a chunk this step: the earliest admitted."""
        return next((s for s in self.running if not s.decoding), None)

    def prefilled(self, seq: Sequence, tokens: list[int]) -> bool:
        """Count a prefilled chunk; whether it was the prompt's last."""
        self.slots.wrote(seq.slot, tokens)
        seq.prefilled += len(tokens)
        if seq.prefilled < len(seq.request.prompt):
            return False
        seq.first_token_at = time.perf_counter()
        return True

    def decoding(self) -> list[Sequence]:
        return [s for s in self.running if s.decoding]

    def retire(self, seq: Sequence) -> None:
        """It leaves the batch (if it ever joined); its row keeps its KV for a later prefix."""
        if seq.slot >= 0:
            self.running.remove(seq)
            self.slots.release(seq.slot)
