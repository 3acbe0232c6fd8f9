"""Local processes that stand in for a job's pods: started together, stopped together, with the
environment a pod would have."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from meshstack.core.contract import JOB_CONFIG_ENV
from meshstack.core.errors import MeshstackError
from meshstack.core.spec import StorageRef
from meshstack.workloads.jax.storage import file_uri

STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class LocalRunError(MeshstackError):
    """A local workload failed; the message says which and where its logs are."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bucket_uri(root: Path, ref: StorageRef) -> str:
    return file_uri(root / "buckets" / ref.bucket / ref.prefix.strip("/"))


def die_with_parent() -> Callable[[], None] | None:
    """What a child runs between fork and exec so that it dies with this process, however this one
    ends (SIGKILL included, when no handler of ours runs): Linux's PR_SET_PDEATHSIG. The children sit
    in sessions of their own (a Ctrl-C to the terminal reaches meshstack, which stops them in order),
    so nothing else would ever stop them: an orphaned server keeps its port for ever.

    The kernel sends the signal when the *thread* that started the child ends: start groups from the
    main thread, or from one that outlives them. Elsewhere than Linux there is nothing to set (None)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def guard() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the guard was set: nobody will signal
            os.kill(os.getpid(), signal.SIGKILL)

    return guard


class ProcessGroup:
    """Processes started together and stopped together, and never outliving the process that started
    them (die_with_parent).

    By default process 0's JSON lines are events (meshstack's own programs); with `stream`, every
    process's output goes there line by line behind its index, as a program of the user's own
    writes it."""

    def __init__(
        self,
        argv: list[str],
        envs: list[dict[str, str]],
        log_dir: Path,
        tag: str,
        stream: Callable[[int, str], None] | None = None,
        cwd: Path | None = None,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []
        self._files: list[TextIO] = []
        self._readers: list[threading.Thread] = []
        for i, env in enumerate(envs):
            log = log_dir / f"{tag}-{i}.log"
            err = log.open("a")
            self._files.append(err)
            self.logs.append(log)
            piped = stream is not None or i == 0
            try:
                proc = subprocess.Popen(
                    [expand(arg, env) for arg in argv],
                    env=env,
                    cwd=cwd,
                    text=True,
                    errors="replace",
                    stderr=subprocess.STDOUT if stream is not None else err,
                    stdout=subprocess.PIPE if piped else err,
                    start_new_session=True,
                    preexec_fn=die_with_parent(),  # between fork and exec: one system call, no lock taken
                )
            except BaseException:
                self.stop()  # those already started would otherwise be nobody's
                raise
            self.procs.append(proc)
            if stream is not None:
                reader = threading.Thread(target=self._relay, args=(i, err, stream), daemon=True)
                reader.start()
                self._readers.append(reader)
        if stream is None:
            threading.Thread(target=self._read, args=(self.procs[0],), daemon=True).start()

    def _relay(self, index: int, log: TextIO, stream: Callable[[int, str], None]) -> None:
        proc = self.procs[index]
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            stream(index, line.rstrip("\n"))

    def wait_output(self, timeout_s: float = 5) -> None:
        """Until every process's output has been relayed (their pipes close when they exit)."""
        for reader in self._readers:
            reader.join(timeout_s)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.events.put(json.loads(line))
        self.events.put(None)

    def returncodes(self) -> list[int | None]:
        return [p.poll() for p in self.procs]

    def kill(self, index: int) -> None:
        self.procs[index].kill()

    def stop(self) -> None:
        """SIGTERM, a grace period, then SIGKILL: nothing is left running."""
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in self._files:
            f.close()


def expand(arg: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of a container's command and args: $(VAR) becomes the variable's value
    where the container has it, $$ a literal $, and anything else stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, arg)


def process_env(config_json: str | None, devices: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a local process runs with: this machine's environment, the job (for meshstack's own
    programs), JAX on `devices` CPU devices, and the contract's variables."""
    return {
        **os.environ,
        **({JOB_CONFIG_ENV: config_json} if config_json is not None else {}),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def python_module(command: Sequence[str]) -> list[str]:
    """A pod's `python -m MODULE` command, run with this interpreter."""
    return [sys.executable, *command[1:]]


def watch_exits(group: ProcessGroup, poll_s: float = 0.1) -> None:
    """Until every process has exited, or one has failed: the others would wait for it for ever in
    their next collective."""
    while True:
        codes = group.returncodes()
        if all(code is not None for code in codes) or any(code not in (None, 0) for code in codes):
            return
        time.sleep(poll_s)
