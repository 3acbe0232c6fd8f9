"""Starting the engine's process, listening, draining, and the server process's main.

Starlette on uvicorn: one event loop holds every connection and stream; the engine runs in a process
of its own (workloads/jax/engine/process.py), which holds the accelerator. While the server waits
for its checkpoint and loads it, /healthz answers and everything else is 503
(workloads/jax/serve_startup.py). On SIGTERM the server turns unready, answers new requests 503,
lets in-flight ones (streams included) finish within serve.drain_timeout_s, then exits. If the
engine's process dies, the server answers 503 and stops (exit 1), so its pod restarts.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from meshstack.core.contract import JOB_CONFIG_ENV, SERVE_TOKEN_ENV, ServeConfig, ServeJobConfig
from meshstack.workloads.jax import checkpoint
from meshstack.workloads.jax.events import write_event
from meshstack.workloads.jax.http_guard import Limits, listener_config
from meshstack.workloads.jax.serve_startup import StartupServer
from meshstack.workloads.jax.serving.app import make_app
from meshstack.workloads.jax.serving.engine_client import EngineClient, EngineDiedError
from meshstack.workloads.jax.serving.metrics import Metrics
from meshstack.workloads.jax.serving.protocol import body_limit
from meshstack.workloads.jax.serving.state import State


def limits(cfg: ServeConfig) -> Limits:
    """What each connection to the server's port is held to, before and after the model is loaded."""
    return Limits(cfg.read_timeout_s, body_limit(cfg))


class Server(uvicorn.Server):
    """uvicorn whose first SIGTERM drains instead of leaving: unready, new requests 503, in-flight
    ones finish (or drain_timeout_s passes), then it exits."""

    def __init__(self, config: uvicorn.Config, state: State) -> None:
        super().__init__(config)
        self.state = state

    @property
    def port(self) -> int:
        """The port bound once started (the config may ask for 0: any free one)."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.state.draining:
            super().handle_exit(sig, frame)
            return
        self.begin_drain()

    def begin_drain(self) -> None:
        self.state.draining = True
        self.state.engine.drain()
        threading.Thread(target=self._drain, name="drain", daemon=True).start()

    def _drain(self) -> None:
        deadline = time.monotonic() + self.state.cfg.drain_timeout_s
        while time.monotonic() < deadline and self.state.busy():
            time.sleep(0.02)
        self.should_exit = True


@dataclass
class Running:
    """A server started in this process (tests, benchmarks)."""

    server: Server
    thread: threading.Thread
    state: State

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drain(self, timeout: float = 60) -> None:
        self.server.begin_drain()
        self.thread.join(timeout)
        self.state.engine.stop()


def build(job: ServeJobConfig, host: str | None = None) -> tuple[Server, State]:
    metrics = Metrics()
    engine = EngineClient(job, metrics)
    metrics.bind(engine.load, lambda: engine.stats)
    state = State(engine, metrics, job.serve, job.name, os.environ.get(SERVE_TOKEN_ENV) or None)
    config = listener_config(
        make_app(state),
        host or job.serve.bind,
        job.serve.port,
        limits(job.serve),
        backlog=256,
        timeout_graceful_shutdown=int(job.serve.drain_timeout_s),
    )
    server = Server(config, state)

    def stop_serving() -> None:
        server.should_exit = True

    engine.on_death = stop_serving
    return server, state


def start(job: ServeJobConfig, host: str | None = None) -> Running:
    server, state = build(job, host)
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on port {job.serve.port}")
        time.sleep(0.01)
    return Running(server, thread, state)


def build_when_ready(job: ServeJobConfig, startup: StartupServer) -> tuple[Server, State]:
    """The server, once its checkpoint exists (when the job says to wait for it) and is loaded."""
    startup.phase = "loading"
    while True:
        try:
            return build(job)
        except FileNotFoundError:
            if not job.wait_for_checkpoint:
                raise
        # Each look starts the engine's process, which takes seconds on a busy node: the probes say
        # "waiting" for all of it, not "loading", until a checkpoint is there.
        if startup.phase != "waiting for the checkpoint":
            write_event({"event": "waiting", "checkpoint_uri": job.checkpoint_uri})
            startup.phase = "waiting for the checkpoint"
        time.sleep(job.checkpoint_poll_s)


def main() -> int:
    raw = os.environ.get(JOB_CONFIG_ENV)
    if not raw:
        print(f"serve: {JOB_CONFIG_ENV} is not set", file=sys.stderr)
        return 2
    job = ServeJobConfig.model_validate_json(raw)
    startup = StartupServer(job.serve.bind, job.serve.port, limits(job.serve))
    try:
        server, state = build_when_ready(job, startup)
    except (FileNotFoundError, checkpoint.CheckpointError, ValueError, EngineDiedError) as exc:
        # Never ready on weights that cannot be trusted: the pod stays unready and restarts.
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    finally:
        startup.close()

    code = serve_until_stopped(server, state, lambda: {"port": server.port})
    write_event({"event": "stopped"})
    return code


def serve_until_stopped(server: Server, state: State, where: Callable[[], dict[str, Any]]) -> int:
    """Run the server until it has drained or its engine died (1, said on stderr); a `serving` event
    (with `where` it listens) once it listens."""

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.started:
            engine = state.engine
            event = {"event": "serving", **where(), "model": state.model, "slots": engine.slots}
            write_event(event | {"max_seq_len": engine.max_seq_len})

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    state.engine.stop()
    if state.engine.failure is not None:
        print(f"serve: {state.engine.failure}", file=sys.stderr)
        return 1
    return 0
