"""Stopping `meshstack run --local` the ways a supervisor does: each signal sent to the meshstack process
alone (an IDE's stop button, `timeout -s INT`, systemd, a CI runner; kill -9 last), while it trains
and while it serves. Nothing it started may be left: its processes sit in sessions of their own, so a
signal to meshstack's group never reaches them, and an orphaned server keeps its port for ever.

meshstack is started as a script's background job is (`meshstack run --local &`): with SIGINT
ignored, which Python then leaves ignored unless told otherwise."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.workloads.local import free_port
from tests.support.processes import stray_processes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder whose job is trained already: the runs below resume at its last step and serve."""
    return tmp_path_factory.mktemp("signals") / "work"


def start(workdir: Path, port: int) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    argv = ["run", "--stack", "dev", "--local", "--steps", "4", "--port", str(port), "--workdir", str(workdir)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshstack.cli", *argv],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # a background job's SIGINT
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()
    return proc, lines


def wait_for(lines: queue.Queue[str], text: str, proc: subprocess.Popen[str], timeout_s: float = 300) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in seen):
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            assert proc.poll() is None, f"meshstack exited {proc.returncode} before '{text}': {seen}"
            assert time.monotonic() < deadline, f"no '{text}' in {timeout_s} s: {seen}"
    return seen


def nothing_left(workdir: Path, port: int, timeout_s: float = 30) -> list[str]:
    """What is still running after `timeout_s`: processes of this run, and the port if still bound."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = stray_processes(workdir)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                left.append(f"port {port} is still bound")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


STOPS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 130), "SIGHUP": (signal.SIGHUP, 130)}
STOPS["SIGKILL"] = (signal.SIGKILL, -signal.SIGKILL)


def test_kill_9_of_meshstack_while_it_trains_leaves_nothing_running(tmp_path: Path) -> None:
    """No handler of meshstack's runs: the trainers die with it (the signals it can handle stop them as
    on Ctrl-C, tested below while it serves)."""
    number, code = STOPS["SIGKILL"]
    workdir, port = tmp_path / "work", free_port()
    proc, lines = start(workdir, port)
    try:
        wait_for(lines, "tiny: step 1/4", proc)
        assert stray_processes(workdir), "the trainer's processes are running"
        proc.send_signal(number)
        assert proc.wait(timeout=60) == code
    finally:
        proc.kill()
        proc.wait()
    assert nothing_left(workdir, port) == []


@pytest.mark.parametrize("name", list(STOPS))
def test_a_signal_to_meshstack_alone_while_it_serves_leaves_nothing_running(served: Path, name: str) -> None:
    number, code = STOPS[name]
    port = free_port()
    proc, lines = start(served, port)
    try:
        wait_for(lines, "serving on", proc)
        assert stray_processes(served), "the server is running"
        began = time.monotonic()
        proc.send_signal(number)
        assert proc.wait(timeout=60) == code, f"{name} stopped meshstack"
    finally:
        proc.kill()
        proc.wait()
    assert nothing_left(served, port) == [], f"{name}: everything meshstack started is gone"
    assert time.monotonic() - began < 45
