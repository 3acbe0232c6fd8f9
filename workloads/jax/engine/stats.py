"""What the engine counts, and the hook a server's metrics take each measurement through."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol


@dataclass
class EngineStats:
    """Counts since start, read by the server's metrics and the benchmark."""

    prefix_queries: int = 0
    prefix_hits: int = 0
    generated_tokens: int = 0


@dataclass(frozen=True)
class Load:
    """What the engine holds now: requests with a KV row, requests waiting for one, rows in all."""

    running: int
    waiting: int
    slots: int


class Observer(Protocol):
    """Told each thing as it happens (the server's Metrics implements it, fed from each step's report)."""

    def first_token(self, seconds: float) -> None:
        """Arrival to first token."""

    def token_step(self, seconds: float) -> None:
        """One decode step's time, once for each request in it."""

    def finished(self, seconds: float) -> None:
        """Arrival to last token."""

    def batch(self, requests: int) -> None:
        """Requests in one decode step."""

    def prefix_lookup(self, reused_tokens: int) -> None:
        """A request looked up in the prefix cache; the prompt tokens it did not recompute (0: a miss)."""

    def generated(self, tokens: int) -> None:
        """Tokens generated."""


class NoObserver:
    """Measures nothing: an engine run without a server (tests, the benchmark's own loop)."""

    def first_token(self, seconds: float) -> None:
        pass

    def token_step(self, seconds: float) -> None:
        pass

    def finished(self, seconds: float) -> None:
        pass

    def batch(self, requests: int) -> None:
        pass

    def prefix_lookup(self, reused_tokens: int) -> None:
        pass

    def generated(self, tokens: int) -> None:
        pass


@dataclass
class StepMetrics:
    """One step's measurements, recorded in the engine's process and replayed into the server's
    Observer when the step's outputs arrive (workloads/jax/engine/process.py)."""

    first_tokens: list[float] = field(default_factory=list)
    token_steps: list[float] = field(default_factory=list)
    finishes: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    prefix_lookups: list[int] = field(default_factory=list)
    tokens: int = 0

    def first_token(self, seconds: float) -> None:
        self.first_tokens.append(seconds)

    def token_step(self, seconds: float) -> None:
        self.token_steps.append(seconds)

    def finished(self, seconds: float) -> None:
        self.finishes.append(seconds)

    def batch(self, requests: int) -> None:
        self.batches.append(requests)

    def prefix_lookup(self, reused_tokens: int) -> None:
        self.prefix_lookups.append(reused_tokens)

    def generated(self, tokens: int) -> None:
        self.tokens += tokens

    def replay(self, observer: Observer) -> None:
        for seconds in self.first_tokens:
            observer.first_token(seconds)
        for seconds in self.token_steps:
            observer.token_step(seconds)
        for seconds in self.finishes:
            observer.finished(seconds)
        for requests in self.batches:
            observer.batch(requests)
        for reused in self.prefix_lookups:
            observer.prefix_lookup(reused)
        if self.tokens:
            observer.generated(self.tokens)

    def take(self) -> StepMetrics:
        """What was recorded since the last take; the recorder starts empty again."""
        taken = replace(self)
        self.first_tokens, self.token_steps, self.finishes, self.batches, self.prefix_lookups = [], [], [], [], []
        self.tokens = 0
        return taken
