"""What crosses between the server and the engine's process, as msgpack over a pipe: the server sends
submits, aborts, a drain and a stop; the engine sends one report a step (every request's new text
and finishes from that step, its measurements, its load), so a stream hears each token as the step
that made it ends and the server's event loop wakes once a step, not once a token."""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import Any

import msgpack

from meshstack.workloads.jax.engine.request import Output, Sampling
from meshstack.workloads.jax.engine.stats import EngineStats, Load, StepMetrics


@dataclass(frozen=True)
class Submit:
    rid: int
    prompt: list[int]
    sampling: Sampling
    arrived: float


@dataclass(frozen=True)
class Abort:
    rid: int


@dataclass(frozen=True)
class Drain:
    """Take no new request; finish the accepted ones."""


@dataclass(frozen=True)
class Stop:
    """Leave now (the server has finished draining, or is going)."""


Command = Submit | Abort | Drain | Stop


@dataclass
class StepReport:
    outputs: list[tuple[int, Output]]
    metrics: StepMetrics
    load: Load
    stats: EngineStats = field(default_factory=EngineStats)


def pack_command(command: Command) -> bytes:
    if isinstance(command, Submit):
        s = command.sampling
        body: list[Any] = [command.rid, command.prompt, [s.max_tokens, s.temperature, s.top_p, list(s.stop), s.seed]]
        return _pack(["submit", *body, command.arrived])
    if isinstance(command, Abort):
        return _pack(["abort", command.rid])
    return _pack(["drain" if isinstance(command, Drain) else "stop"])


def unpack_command(raw: bytes) -> Command:
    kind, *rest = msgpack.unpackb(raw)
    if kind == "submit":
        rid, prompt, (max_tokens, temperature, top_p, stop, seed), arrived = rest
        return Submit(rid, prompt, Sampling(max_tokens, temperature, top_p, tuple(stop), seed), arrived)
    if kind == "abort":
        return Abort(rest[0])
    return Drain() if kind == "drain" else Stop()


def pack_report(report: StepReport) -> bytes:
    outputs = [[rid, *astuple(out)] for rid, out in report.outputs]
    return _pack([outputs, astuple(report.metrics), astuple(report.load), astuple(report.stats)])


def unpack_report(raw: bytes) -> StepReport:
    outputs, metrics, load, stats = msgpack.unpackb(raw)
    return StepReport(
        [(rid, _output(*fields)) for rid, *fields in outputs],
        StepMetrics(*metrics),
        Load(*load),
        EngineStats(*stats),
    )


def _output(text: str, finish: str | None, prompt: int, completion: int, cached: int, token_ids: list[int]) -> Output:
    return Output(text, finish, prompt, completion, cached, tuple(token_ids))


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed
