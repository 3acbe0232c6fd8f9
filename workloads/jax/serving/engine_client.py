"""The server's side of the engine's process (workloads/jax/engine/process.py): it starts the process,
sends it requests and aborts, and fans each step's report out to the requests' sinks.

A reader thread waits on the pipe (without the interpreter lock) and hands each report's outputs to
their sinks, which post them to the event loop (state.py's Mailbox: one wake-up a step). Admission
is decided here, with an exact count of the requests sent and not yet heard finished, so a refusal
(429, 503 while draining) is answered at once, never a round trip later. When the process dies, every
request in flight hears an `error` finish naming its exit code, `failure` says it, and `on_death`
runs (the launcher stops the server: the pod restarts rather than stay up with no engine)."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from collections.abc import Callable

from meshstack.core.contract import ServeJobConfig
from meshstack.workloads.jax.engine import process
from meshstack.workloads.jax.engine.channel import Abort, Command, Drain, Stop, Submit, pack_command, unpack_report
from meshstack.workloads.jax.engine.request import Output, Sampling
from meshstack.workloads.jax.engine.scheduler import check_admission
from meshstack.workloads.jax.engine.stats import EngineStats, Load, Observer

STOP_WAIT_S = 10


class EngineDiedError(RuntimeError):
    """The engine's process exited while the server ran: nothing can be generated until a restart."""


class Submitted:
    """A request sent to the engine: cancelling it frees its row at the engine's next step."""

    def __init__(self, client: EngineClient, rid: int) -> None:
        self._client, self._rid = client, rid

    def cancel(self) -> None:
        self._client.abort(self._rid)


class EngineClient:
    def __init__(self, job: ServeJobConfig, observer: Observer) -> None:
        """Start the engine's process and wait until it is loaded and compiled; what stopped it loading
        (FileNotFoundError for a checkpoint not there yet, CheckpointError, ValueError...) is raised here."""
        self.observer = observer
        self.on_death: Callable[[], None] = lambda: None
        self.failure: str | None = None
        ctx = multiprocessing.get_context("spawn")  # JAX is not safe across a fork
        self._conn, child = ctx.Pipe()
        # The unset fields stay unset: the engine tells a declared model from a default one by them.
        self._process = ctx.Process(
            target=process.run, args=(child, job.model_dump_json(exclude_unset=True)), name="engine-core", daemon=True
        )
        self._process.start()
        child.close()
        ready = self._await_ready()
        self.tokenizer, self.max_seq_len, self.slots = ready.tokenizer, ready.max_seq_len, ready.slots
        self.max_waiting, self.weight_dtypes = ready.max_waiting, ready.weight_dtypes
        self._sinks: dict[int, Callable[[Output], None]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._draining = False
        self._stopping = False
        self._load = Load(0, 0, self.slots)
        self.stats = EngineStats()
        self._reader = threading.Thread(target=self._read, name="engine-reader", daemon=True)
        self._reader.start()

    def _await_ready(self) -> process.Ready:
        message = self._first_message()
        if not isinstance(message, process.Ready):
            self._process.join(STOP_WAIT_S)
            self._conn.close()
        if message is None:
            raise EngineDiedError(
                f"the engine process exited with code {self._process.exitcode} while loading the model "
                "(its own error, if it printed one, is above)"
            )
        if isinstance(message, process.Failed):
            raise message.error
        assert isinstance(message, process.Ready), f"the engine's first message: {message!r}"
        return message

    def _first_message(self) -> object | None:
        """What the process said first, or None when it exited without a word."""
        while not self._conn.poll(0.05):
            if not self._process.is_alive() and not self._conn.poll(0):
                return None
        try:
            return self._conn.recv()
        except EOFError:
            return None

    # --- what the handlers call ------------------------------------------------------------------

    def submit(self, prompt: list[int], sampling: Sampling, sink: Callable[[Output], None]) -> Submitted:
        """Send a request (EngineFullError, EngineDrainingError, EngineDiedError: refused, nothing sent)."""
        with self._lock:
            if self.failure is not None:
                raise EngineDiedError(self.failure)
            check_admission(len(self._sinks), self.slots, self.max_waiting, self._draining)
            rid = next(self._ids)
            self._sinks[rid] = sink
        self._send(Submit(rid, prompt, sampling, time.perf_counter()))
        return Submitted(self, rid)

    def abort(self, rid: int) -> None:
        with self._lock:
            if rid not in self._sinks:
                return  # finished already
        self._send(Abort(rid))

    def drain(self) -> None:
        with self._lock:
            self._draining = True
        self._send(Drain())

    def idle(self) -> bool:
        """Nothing sent is still unfinished."""
        with self._lock:
            return not self._sinks

    @property
    def pid(self) -> int | None:
        """The engine process's id (what an operator or a test signals)."""
        return self._process.pid

    def load(self) -> Load:
        """What the engine held at its last step."""
        return self._load

    def stop(self) -> None:
        """Stop the engine's process (at once: drain first for the requests to finish)."""
        self._stopping = True
        self._send(Stop())
        self._process.join(STOP_WAIT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(STOP_WAIT_S)
        self._conn.close()

    # --- the pipe --------------------------------------------------------------------------------

    def _send(self, command: Command) -> None:
        with self._send_lock:
            try:
                self._conn.send_bytes(pack_command(command))
            except (BrokenPipeError, OSError):
                if not self._stopping:
                    self._died()

    def _read(self) -> None:
        while True:
            try:
                raw = self._conn.recv_bytes()
            except (EOFError, OSError):
                if not self._stopping:
                    self._died()
                return
            report = unpack_report(raw)
            self._load, self.stats = report.load, report.stats
            report.metrics.replay(self.observer)
            for rid, output in report.outputs:
                with self._lock:
                    sink = self._sinks.pop(rid) if output.finish_reason is not None else self._sinks[rid]
                sink(output)

    def _died(self) -> None:
        """The process is gone: every request in flight ends in an error that says so."""
        self._process.join(STOP_WAIT_S)
        with self._lock:
            if self.failure is not None:
                return
            self.failure = f"the engine process exited with code {self._process.exitcode}; the server is stopping"
            sinks, self._sinks = list(self._sinks.values()), {}
        for sink in sinks:
            sink(Output("", "error"))
        self.on_death()
