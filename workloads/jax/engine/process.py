"""The engine core in a process of its own, as vLLM's V1 engine runs: the server's process holds the
HTTP event loop and only the HTTP event loop, so a step's Python (scheduling, sampling's bookkeeping,
detokenising) never holds the interpreter lock the loop needs to write tokens, and a crash of the
accelerator's runtime is an exit code the server reports, not a hung thread.

The process is started with 'spawn' (JAX is not safe across a fork once initialised). It loads the
engine, warms it up, and says so on the pipe (`Ready`, with what the server needs: the tokenizer,
the context, the rows), or sends the exception that stopped it. Then it loops: read every command
waiting, run one step, send one report. It ignores SIGINT and SIGTERM, which a terminal or a local
runner sends the whole process group: the server decides when it stops (Stop, or the pipe closing
when the server's process is gone)."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection

from meshstack.core.contract import ServeJobConfig
from meshstack.workloads.jax.engine.channel import (
    Abort,
    Drain,
    StepReport,
    Stop,
    Submit,
    pack_report,
    unpack_command,
)
from meshstack.workloads.jax.engine.core import Engine
from meshstack.workloads.jax.engine.loading import load_engine
from meshstack.workloads.jax.engine.request import Output, Request
from meshstack.workloads.jax.engine.stats import StepMetrics
from meshstack.workloads.jax.tokenization import Tokenizer

IDLE_POLL_S = 1.0


@dataclass(frozen=True)
class Ready:
    """The engine is loaded and compiled: what the server checks prompts against and encodes them with."""

    tokenizer: Tokenizer
    max_seq_len: int
    slots: int
    max_waiting: int
    weight_dtypes: tuple[str, ...]


@dataclass(frozen=True)
class Failed:
    """What stopped the engine loading (the exception itself where it pickles, else its text)."""

    error: BaseException


def run(conn: Connection, job_json: str) -> None:
    """The engine process's main: load, report, then serve the pipe until Stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    job = ServeJobConfig.model_validate_json(job_json)
    metrics = StepMetrics()
    try:
        engine = load_engine(job, metrics)
        engine.warm_up()
    except Exception as exc:  # every load error goes to the server, which says it and exits
        conn.send(Failed(_portable(exc)))
        return
    conn.send(Ready(engine.tokenizer, engine.max_seq_len, engine.slots, job.serve.max_queue, engine.weight_dtypes()))
    _Core(engine, metrics, conn).loop()


class _Core:
    def __init__(self, engine: Engine, metrics: StepMetrics, conn: Connection) -> None:
        self.engine, self.metrics, self.conn = engine, metrics, conn
        self.requests: dict[int, Request] = {}
        self.outputs: list[tuple[int, Output]] = []

    def loop(self) -> None:
        while True:
            timeout = IDLE_POLL_S if self.engine.idle() else 0.0
            try:
                if self.conn.poll(timeout) and not self._read():
                    return
            except (EOFError, OSError):
                return  # the server's process is gone
            if self.engine.idle():
                continue
            self.engine.step()
            report = StepReport(self.outputs, self.metrics.take(), self.engine.load(), self.engine.stats)
            self.outputs = []
            try:
                self.conn.send_bytes(pack_report(report))
            except (BrokenPipeError, OSError):
                return

    def _read(self) -> bool:
        """Every command waiting; False on Stop."""
        while True:
            command = unpack_command(self.conn.recv_bytes())
            if isinstance(command, Stop):
                return False
            if isinstance(command, Submit):
                self._submit(command)
            elif isinstance(command, Abort):
                request = self.requests.get(command.rid)
                if request is not None:
                    request.cancelled.set()
            elif isinstance(command, Drain):
                self.engine.drain()
            if not self.conn.poll(0):
                return True

    def _submit(self, command: Submit) -> None:
        rid = command.rid

        def sink(output: Output) -> None:
            self.outputs.append((rid, output))
            if output.finish_reason is not None:
                del self.requests[rid]

        request = Request(command.prompt, command.sampling, sink, arrived=command.arrived)
        self.requests[rid] = request
        # The server checked admission with its exact count of what it has sent and not heard finish.
        self.engine.submit(request)


def _portable(exc: Exception) -> BaseException:
    """The exception as the server will re-raise it: itself where it pickles, else a RuntimeError."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
