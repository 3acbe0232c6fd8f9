"""The engine core in its own process: what crosses the pipe, and what the server says when the
engine cannot start or dies under it (a clear error, never a hang)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from pathlib import Path

import pytest

from meshstack.workloads.jax.engine.channel import (
    Abort,
    Drain,
    StepReport,
    Stop,
    Submit,
    pack_command,
    pack_report,
    unpack_command,
    unpack_report,
)
from meshstack.workloads.jax.engine.request import Output, Sampling
from meshstack.workloads.jax.engine.stats import EngineStats, Load, StepMetrics
from meshstack.workloads.jax.serving.engine_client import EngineDiedError
from meshstack.workloads.jax.serving.launcher import start
from tests.support.serving import MODEL, client, serve_job


def test_commands_and_reports_cross_the_pipe_unchanged() -> None:
    commands = [Submit(3, [1, 65, 66], Sampling(8, 0.5, 0.9, ("\n", "END"), 7), 12.5), Abort(3), Drain(), Stop()]
    assert [unpack_command(pack_command(c)) for c in commands] == commands
    metrics = StepMetrics([0.1], [0.01, 0.01], [0.5], [2], [0, 16], 2)
    report = StepReport(
        [(3, Output("ab")), (4, Output("", "length", 3, 8, 0, (65, 66)))], metrics, Load(1, 2, 4), EngineStats(2, 1, 9)
    )
    assert unpack_report(pack_report(report)) == report


def test_a_checkpoint_that_is_not_there_is_the_engines_error_raised_in_the_server(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        start(serve_job((tmp_path / "none").as_uri()), host="127.0.0.1")


@pytest.mark.slow
def test_an_engine_process_that_dies_while_loading_is_a_clear_error(
    checkpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XLA_FLAGS", "--meshstack_no_such_flag")  # XLA aborts the new process at start
    with pytest.raises(EngineDiedError, match=r"the engine process exited with code -?\d+ while loading the model"):
        start(serve_job(checkpoint), host="127.0.0.1")


@pytest.mark.slow
def test_an_engine_process_that_dies_ends_streams_with_an_error_and_stops_the_server(checkpoint: str) -> None:
    running = start(serve_job(checkpoint, max_new_tokens=100), host="127.0.0.1")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
        body = {"model": MODEL, "prompt": "Long", "max_tokens": 100, "temperature": 0, "stream": True}
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.readline().startswith(b"data: "), "the stream started"
        assert running.state.engine.pid is not None
        os.kill(running.state.engine.pid, signal.SIGKILL)
        rest = response.read().decode()
        events = [json.loads(line[6:]) for line in rest.splitlines() if line.startswith("data: {")]
        assert events[-1]["error"]["code"] == "engine_unavailable", rest[-300:]
        assert "the engine process exited with code -9" in events[-1]["error"]["message"]
        assert rest.rstrip().endswith("data: [DONE]")
        running.thread.join(30)
        assert not running.thread.is_alive(), "the server stopped once its engine had died"
        with pytest.raises(EngineDiedError, match="exited with code -9"):
            running.state.engine.submit([1, 65], Sampling(2, 0.0), lambda out: None)
    finally:
        running.state.engine.stop()


@pytest.mark.slow
def test_a_dead_engine_fails_the_probes_and_refuses_requests_with_503(checkpoint: str) -> None:
    running = start(serve_job(checkpoint), host="127.0.0.1")
    try:
        engine = running.state.engine
        assert engine.pid is not None
        running.server.should_exit = False
        engine.on_death = lambda: None  # keep listening, to see what a client is told meanwhile
        os.kill(engine.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while engine.failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
        for path in ("/healthz", "/readyz"):
            conn.request("GET", path)
            assert conn.getresponse().status == 503, path
            conn.close()
        with pytest.raises(Exception, match="engine process exited") as caught:
            client(running).completions.create(model=MODEL, prompt="Hi", max_tokens=2)
        assert getattr(caught.value, "status_code", None) == 503
    finally:
        running.drain()
